/* peer_http PORT BODY_FILE: the user-mode peer `cargo xtask bench` compares the drivers with.
 *
 * A plain sockets HTTP/1.1 server on 127.0.0.1:PORT, one thread per connection, answering every request
 * head with 200 and the bytes of BODY_FILE as text/html, with the head the wsk sample sends (same status
 * line and headers: the bench checks that every server's `GET /` answer is byte-identical). HTTP/1.1
 * persists unless `Connection: close`, HTTP/1.0 closes unless `Connection: keep-alive`, as in the sample.
 * Request bodies are not supported: wrk sends GETs only.
 *
 * One source, two builds: with mingw for Windows (run under Wine; written in C because a Rust std .exe does
 * not start under Wine 8.0, it imports bcryptprimitives.dll's ProcessPrng) and with cc for Linux (the
 * native reference), hence the #ifdef _WIN32 below. */
#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
typedef int socklen_t;
#define close_socket closesocket
#define SHUT_WR SD_SEND
#define SEND_FLAGS 0
#else
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
typedef int SOCKET;
#define INVALID_SOCKET (-1)
#define close_socket close
#define SEND_FLAGS MSG_NOSIGNAL
#endif
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEAD_CAP 16384

/* The three answers the sample gives to `GET /`: HTTP/1.1 default, HTTP/1.0 keep-alive, closing. */
static char *answers[3];
static int answer_lens[3];
enum { DEFAULT, KEEP_ALIVE, CLOSE };

/* Which answer the request head (NUL-terminated, lower-cased copy) gets. */
static int answer_for(const char *head)
{
    int http10 = strstr(head, "http/1.0\r\n") != NULL;
    if (strstr(head, "\r\nconnection: close"))
        return CLOSE;
    if (http10)
        return strstr(head, "\r\nconnection: keep-alive") ? KEEP_ALIVE : CLOSE;
    return DEFAULT;
}

static int send_all(SOCKET s, const char *p, int len)
{
    while (len > 0) {
        int n = send(s, p, len, SEND_FLAGS);
        if (n <= 0)
            return 0;
        p += n;
        len -= n;
    }
    return 1;
}

static void serve(SOCKET s)
{
    static char unused;
    char *buf = malloc(2 * HEAD_CAP + 1), *head = buf ? buf + HEAD_CAP : &unused;
    int len = 0;
    while (buf) {
        char *end;
        int head_len, i, which;
        buf[len] = 0;
        while ((end = strstr(buf, "\r\n\r\n")) == NULL) {
            int n;
            if (len >= HEAD_CAP - 1)
                goto done;
            n = recv(s, buf + len, HEAD_CAP - 1 - len, 0);
            if (n <= 0)
                goto done;
            len += n;
            buf[len] = 0;
        }
        head_len = (int)(end + 4 - buf);
        for (i = 0; i < head_len; i++)
            head[i] = (char)tolower((unsigned char)buf[i]);
        head[head_len] = 0;
        which = answer_for(head);
        if (!send_all(s, answers[which], answer_lens[which]) || which == CLOSE)
            goto done;
        memmove(buf, buf + head_len, len - head_len);
        len -= head_len;
    }
done:
    free(buf);
    shutdown(s, SHUT_WR);
    close_socket(s);
}

#ifdef _WIN32
static DWORD WINAPI serve_thread(LPVOID arg)
{
    serve((SOCKET)arg);
    return 0;
}

static int spawn(SOCKET c)
{
    HANDLE t = CreateThread(NULL, 0, serve_thread, (LPVOID)c, 0, NULL);
    if (!t)
        return 0;
    CloseHandle(t);
    return 1;
}
#else
static void *serve_thread(void *arg)
{
    serve((SOCKET)(long)arg);
    return NULL;
}

static int spawn(SOCKET c)
{
    pthread_t t;
    pthread_attr_t attr;
    int ok;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    ok = pthread_create(&t, &attr, serve_thread, (void *)(long)c) == 0;
    pthread_attr_destroy(&attr);
    return ok;
}
#endif

/* Reads the body and formats the three answers; 0 on failure. */
static int load_answers(const char *path)
{
    static const char *const connection[3] = { "", "Connection: keep-alive\r\n", "Connection: close\r\n" };
    FILE *f = fopen(path, "rb");
    char *body;
    long body_len;
    int i;
    if (!f || fseek(f, 0, SEEK_END) != 0 || (body_len = ftell(f)) < 0 || body_len > 1 << 20
            || fseek(f, 0, SEEK_SET) != 0 || !(body = malloc(body_len + 1))
            || fread(body, 1, body_len, f) != (size_t)body_len) {
        fprintf(stderr, "peer_http: cannot read %s\n", path);
        return 0;
    }
    fclose(f);
    for (i = 0; i < 3; i++) {
        char head[256];
        int head_len = snprintf(head, sizeof head,
                                "HTTP/1.1 200 OK\r\nServer: wsk-http-listener\r\nContent-Length: %ld\r\n"
                                "Content-Type: text/html; charset=utf-8\r\n%s\r\n",
                                body_len, connection[i]);
        if (head_len <= 0 || head_len >= (int)sizeof head || !(answers[i] = malloc(head_len + body_len)))
            return 0;
        memcpy(answers[i], head, head_len);
        memcpy(answers[i] + head_len, body, body_len);
        answer_lens[i] = head_len + (int)body_len;
    }
    free(body);
    return 1;
}

int main(int argc, char **argv)
{
    SOCKET ls;
    struct sockaddr_in addr;
    int port = argc > 1 ? atoi(argv[1]) : 0, one = 1;

    if (argc != 3 || port <= 0 || port > 65535) {
        fprintf(stderr, "usage: peer_http PORT BODY_FILE\n");
        return 2;
    }
    if (!load_answers(argv[2]))
        return 1;
#ifdef _WIN32
    {
        WSADATA wsa;
        if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0)
            return 1;
    }
#else
    signal(SIGPIPE, SIG_IGN);
#endif
    ls = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    if (ls == INVALID_SOCKET)
        return 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, (const char *)&one, sizeof one);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(ls, SOMAXCONN) != 0) {
        fprintf(stderr, "peer_http: cannot listen on 127.0.0.1:%d\n", port);
        return 1;
    }
    fprintf(stderr, "peer_http: listening on 127.0.0.1:%d\n", port);
    for (;;) {
        SOCKET c = accept(ls, NULL, NULL);
        if (c == INVALID_SOCKET)
            continue;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, (const char *)&one, sizeof one);
        if (!spawn(c))
            close_socket(c);
    }
}
