/* peer_http.exe PORT BODY_BYTES: the user-mode peer `cargo xtask bench` compares the driver with.
 *
 * A plain Winsock HTTP/1.1 server on 127.0.0.1:PORT, one thread per connection, keep-alive, answering every
 * request with 200 and a BODY_BYTES-long text/html body (the driver's `GET /` size, so both send the same
 * bytes). Written in C because a Rust std .exe does not start under Wine 8.0 (it imports
 * bcryptprimitives.dll's ProcessPrng). Request bodies are not supported: wrk sends GETs only. */
#include <winsock2.h>
#include <ws2tcpip.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *response;
static int response_len;

/* Whether the request head (NUL-terminated, lower-cased copy) asks to keep the connection open. */
static int keep_alive(const char *head)
{
    if (strstr(head, "connection: close"))
        return 0;
    if (strstr(head, "http/1.0"))
        return strstr(head, "connection: keep-alive") != NULL;
    return 1;
}

static DWORD WINAPI serve(LPVOID arg)
{
    SOCKET s = (SOCKET)arg;
    char buf[16384];
    int len = 0;
    for (;;) {
        char *end;
        buf[len] = 0;
        while ((end = strstr(buf, "\r\n\r\n")) == NULL) {
            int n;
            if (len >= (int)sizeof(buf) - 1)
                goto done;
            n = recv(s, buf + len, (int)sizeof(buf) - 1 - len, 0);
            if (n <= 0)
                goto done;
            len += n;
            buf[len] = 0;
        }
        {
            int head_len = (int)(end + 4 - buf), sent = 0, i, keep;
            char head[16384];
            for (i = 0; i < head_len; i++)
                head[i] = (char)tolower((unsigned char)buf[i]);
            head[head_len] = 0;
            keep = keep_alive(head);
            while (sent < response_len) {
                int n = send(s, response + sent, response_len - sent, 0);
                if (n <= 0)
                    goto done;
                sent += n;
            }
            if (!keep)
                goto done;
            memmove(buf, buf + head_len, len - head_len);
            len -= head_len;
        }
    }
done:
    shutdown(s, SD_SEND);
    closesocket(s);
    return 0;
}

int main(int argc, char **argv)
{
    WSADATA wsa;
    SOCKET ls;
    struct sockaddr_in addr;
    int port = argc > 1 ? atoi(argv[1]) : 18081;
    int body_len = argc > 2 ? atoi(argv[2]) : 128;
    int head_len, i, one = 1;
    char head[256];

    if (body_len < 0 || body_len > 1 << 20)
        body_len = 128;
    head_len = snprintf(head, sizeof head,
                        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n", body_len);
    response_len = head_len + body_len;
    response = malloc(response_len);
    if (!response)
        return 1;
    memcpy(response, head, head_len);
    for (i = 0; i < body_len; i++)
        response[head_len + i] = "<p>peer</p>\n"[i % 12];

    if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0)
        return 1;
    ls = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    if (ls == INVALID_SOCKET)
        return 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, (const char *)&one, sizeof one);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(ls, SOMAXCONN) != 0) {
        fprintf(stderr, "peer_http: cannot listen on 127.0.0.1:%d (%d)\n", port, WSAGetLastError());
        return 1;
    }
    fprintf(stderr, "peer_http: listening on 127.0.0.1:%d, body %d bytes\n", port, body_len);
    for (;;) {
        SOCKET c = accept(ls, NULL, NULL);
        HANDLE t;
        if (c == INVALID_SOCKET)
            continue;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, (const char *)&one, sizeof one);
        t = CreateThread(NULL, 0, serve, (LPVOID)c, 0, NULL);
        if (t)
            CloseHandle(t);
        else
            closesocket(c);
    }
}
