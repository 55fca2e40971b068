/* c_wsk_http.sys: the hand-written C WSK driver `cargo xtask bench` measures the wsk sample against.
 *
 * It answers `GET /` with exactly the bytes the sample (examples/http-listener) sends: the same status line,
 * headers and 383-byte page (the bench checks both answers byte for byte), so the comparison is of the two
 * servers and not of their payloads. It is written the way a careful C author would write it, with no
 * allocation per request and no thread per connection:
 *
 * - DriverEntry: WskRegister, WskCaptureProviderNPI, WskSocket(WSK_FLAG_LISTEN_SOCKET), WskBind on
 *   0.0.0.0:C_WSK_HTTP_PORT (on a listen socket, bind starts listening), then the first WskAccept.
 * - One WskAccept at a time, with a completion routine that starts the new connection and issues the next
 *   WskAccept.
 * - Per connection one non-paged block (state and an 8 KiB input buffer, as the sample's), one IRP reused
 *   with IoReuseIrp and one MDL over the buffer: a receive/send state machine driven by the IRP's completion
 *   routine. Responses are static, with their MDLs built once at load, so a request allocates nothing.
 * - A request head ends at "\r\n\r\n"; HTTP/1.1 persists unless `Connection: close`, HTTP/1.0 closes unless
 *   `Connection: keep-alive`; pipelined heads are answered in order. `GET /` (query ignored) gets the page,
 *   anything else a 404, a request with a body 400, a head over 8 KiB 431; errors close the connection.
 * - Sockets are closed by one system thread (the "reaper"): Wine's netio completes IRPs while holding the
 *   socket's lock and frees the socket in WskCloseSocket, so a close from a completion routine of that socket
 *   is a use-after-free there. On Windows the close could be issued from the routine; here it costs one
 *   context switch per connection, not per request.
 * - DriverUnload: stop accepting and close the listener, close every connection (WskCloseSocket cancels a
 *   pending receive), wait until each connection's IRP has completed and its memory is freed, stop the
 *   reaper, release the provider NPI, WskDeregister. The counters logged at the end must all be 0.
 *
 * Re-entrancy: Wine completes a call inline (the completion routine runs before the call returns, which
 * then still says STATUS_PENDING), so a routine that issues the next call directly could recurse once per
 * buffered request or queued connection. Each state machine is therefore advanced by a small trampoline
 * (`busy` counter): whoever raises it from 0 runs the machine until no completion arrived meanwhile; a
 * completion that arrives while it runs only raises the counter. The counter also makes the machine's owner
 * the only thread that issues calls on the socket, which is what lets unload close a socket safely.
 *
 * WINE_THREAD_CANCEL: Wine ties a pending socket operation to the thread that issued it and cancels it when
 * that thread exits, as Windows does for thread-queued I/O. The calls here are issued from completion
 * routines, which Wine runs on its threadpool threads, and those exit when idle: a pending WskAccept or
 * WskReceive then completes with STATUS_CANCELLED although nobody cancelled it. Both are simply issued
 * again (nothing was consumed); a cancelled send ends the connection, since part of it may have gone out.
 * On Windows, WSK IRPs are not tied to a thread and STATUS_CANCELLED comes only from closing the socket.
 *
 * Not done here (honest limits of a reference server): request bodies, HEAD, /stats, idle timeouts.
 * Built by `cargo xtask bench` with x86_64-w64-mingw32-gcc against Wine's ddk/wdm.h and ddk/wsk.h
 * (libwine-dev), -DC_WSK_HTTP_PORT=N; imports only ntoskrnl.exe and NETIO.SYS. */
#include <stdarg.h>
#include <ntstatus.h>
#define WIN32_NO_STATUS
#include <windef.h>
#include <winternl.h>
#include <ddk/wdm.h>
#include <winioctl.h>
#include <winsock2.h>
#include <ws2tcpip.h>
#include <ddk/wsk.h>

#ifndef C_WSK_HTTP_PORT
#define C_WSK_HTTP_PORT 8081
#endif

#define POOL_TAG ((ULONG)'w' | (ULONG)'s' << 8 | (ULONG)'k' << 16 | (ULONG)'h' << 24) /* "wskh" in a pool dump */
#define IN_CAP 8192

/* ---- the responses: byte-identical to the sample's (examples/http-listener/src/http/response.rs) ---- */

#define PAGE "<!DOCTYPE html>\n" \
    "<html lang=\"en\">\n" \
    "<head><meta charset=\"utf-8\"><title>wsk http-listener</title></head>\n" \
    "<body>\n" \
    "<h1>Hello from the Windows kernel</h1>\n" \
    "<p>This page was served by a Rust driver speaking HTTP/1.1 over Winsock Kernel.</p>\n" \
    "<ul>\n" \
    "<li><a href=\"/stats\">/stats</a>: live driver counters as JSON</li>\n" \
    "<li><code>POST /echo</code>: echoes the request body</li>\n" \
    "</ul>\n" \
    "</body>\n" \
    "</html>\n"
_Static_assert(sizeof(PAGE) - 1 == 383, "PAGE_HEAD's Content-Length must match the page");
#define PAGE_HEAD "HTTP/1.1 200 OK\r\nServer: wsk-http-listener\r\nContent-Length: 383\r\n" \
    "Content-Type: text/html; charset=utf-8\r\n"
#define ERROR_HEAD(status) "HTTP/1.1 " status "\r\nServer: wsk-http-listener\r\nContent-Length: 0\r\n" \
    "Connection: close\r\n\r\n"

static const char ok_default[] = PAGE_HEAD "\r\n" PAGE;
static const char ok_keep_alive[] = PAGE_HEAD "Connection: keep-alive\r\n\r\n" PAGE;
static const char ok_close[] = PAGE_HEAD "Connection: close\r\n\r\n" PAGE;
static const char bad_request[] = ERROR_HEAD("400 Bad Request");
static const char not_found[] = ERROR_HEAD("404 Not Found");
static const char too_large[] = ERROR_HEAD("431 Request Header Fields Too Large");

struct response
{
    const char *bytes;
    ULONG len;
    BOOLEAN close;
    MDL *mdl; /* built once at load; shared by every send of these read-only bytes */
};

enum { R_OK_DEFAULT, R_OK_KEEP_ALIVE, R_OK_CLOSE, R_BAD_REQUEST, R_NOT_FOUND, R_TOO_LARGE, R_COUNT };
#define RESPONSE(a, close) { a, sizeof(a) - 1, close, NULL }
static struct response responses[R_COUNT] = {
    RESPONSE(ok_default, FALSE), RESPONSE(ok_keep_alive, FALSE), RESPONSE(ok_close, TRUE),
    RESPONSE(bad_request, TRUE), RESPONSE(not_found, TRUE), RESPONSE(too_large, TRUE),
};

/* ---- the request parser ---- */

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* Whether p[0..n) equals the lower-case word w, ignoring case. */
static BOOLEAN word_is(const char *p, ULONG n, const char *w)
{
    ULONG i;
    for (i = 0; i < n && w[i]; i++)
        if (lower((unsigned char)p[i]) != w[i])
            return FALSE;
    return i == n && !w[i];
}

static ULONG find(const char *p, ULONG from, ULONG to, char c)
{
    while (from < to && p[from] != c)
        from++;
    return from;
}

/* The offset just past the "\r\n\r\n" that ends the head in p[0..len), scanning from `from`; 0 if none. */
static ULONG head_end(const char *p, ULONG from, ULONG len)
{
    ULONG i;
    for (i = from; i + 4 <= len; i++)
        if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n')
            return i + 4;
    return 0;
}

/* The response to the complete head p[0..n) (n includes the final "\r\n\r\n"). */
static int answer(const char *p, ULONG n)
{
    ULONG line_end = find(p, 0, n, '\r'), sp1 = find(p, 0, line_end, ' ');
    ULONG sp2 = find(p, sp1 + 1, line_end, ' '), pos;
    BOOLEAN close = FALSE, keep_alive = FALSE, http10, root;
    const char *version = p + sp2 + 1;

    if (sp2 >= line_end || line_end - sp2 - 1 != 8 || !word_is(version, 7, "http/1.")
            || (version[7] != '0' && version[7] != '1'))
        return R_BAD_REQUEST;
    http10 = version[7] == '0';
    root = p[sp1 + 1] == '/' && (sp1 + 2 == sp2 || p[sp1 + 2] == '?');
    for (pos = line_end + 2; pos + 2 < n; pos = find(p, pos, n, '\n') + 1)
    {
        ULONG end = find(p, pos, n, '\r'), colon = find(p, pos, end, ':'), v = colon + 1, w;
        if (colon >= end)
            return R_BAD_REQUEST;
        while (v < end && (p[v] == ' ' || p[v] == '\t'))
            v++;
        if (word_is(p + pos, colon - pos, "connection"))
        {
            /* A comma-separated token list: `close`, `keep-alive`, others ignored. */
            for (; v < end; v = w + 1)
            {
                ULONG t_end;
                while (v < end && (p[v] == ' ' || p[v] == ','))
                    v++;
                w = find(p, v, end, ',');
                for (t_end = w; t_end > v && (p[t_end - 1] == ' ' || p[t_end - 1] == '\t'); t_end--)
                    ;
                close |= word_is(p + v, t_end - v, "close");
                keep_alive |= word_is(p + v, t_end - v, "keep-alive");
            }
        }
        else if (word_is(p + pos, colon - pos, "transfer-encoding")
                || (word_is(p + pos, colon - pos, "content-length") && !(end - v == 1 && p[v] == '0')))
            return R_BAD_REQUEST; /* bodies are not supported */
    }
    if (sp1 != 3 || p[0] != 'G' || p[1] != 'E' || p[2] != 'T' || !root) /* methods are case-sensitive */
        return R_NOT_FOUND;
    if (close || (http10 && !keep_alive))
        return R_OK_CLOSE;
    return http10 ? R_OK_KEEP_ALIVE : R_OK_DEFAULT;
}

/* ---- driver state ---- */

static WSK_REGISTRATION registration;
static WSK_PROVIDER_NPI provider;
static BOOLEAN registered, captured;
static WSK_SOCKET *listener;
static volatile LONG stopping;

/* A caller-allocated IRP and an event, for the few calls made synchronously at PASSIVE_LEVEL. */
struct sync_irp
{
    IRP *irp;
    KEVENT done;
    volatile LONG ran;
};
static struct sync_irp setup_irp, reaper_irp;

/* Counters: every allocation is counted, so unload can show that nothing leaked. */
static volatile LONG pool_live, irps_live, mdls_live, connections_live;
static volatile LONG64 connections_accepted, requests_served;

static KSPIN_LOCK lock;        /* guards the two lists below and conn.stop_seen */
static LIST_ENTRY connections; /* every connection not yet freed */
static LIST_ENTRY to_close;    /* connections handed to the reaper */
static KEVENT reaper_wake, all_freed;
static volatile LONG reaper_exit;
static void *reaper_thread;

enum op { OP_NONE, OP_RECEIVE, OP_SEND };

struct conn
{
    LIST_ENTRY link;      /* in `connections` */
    LIST_ENTRY close_link; /* in `to_close` */
    WSK_SOCKET *socket;
    IRP *irp;
    MDL *mdl;             /* over `in` */
    volatile LONG refs;   /* the socket (dropped by the reaper after close), a pending IRP, a kicker */
    volatile LONG busy;   /* the trampoline */
    volatile LONG irp_pending;
    BOOLEAN ended, graceful, stop_seen;
    enum op op;           /* what the last IRP was, and so what `status`/`information` mean */
    NTSTATUS status;
    ULONG_PTR information;
    const struct response *response;
    ULONG sent, head_len, in_len, scanned;
    char in[IN_CAP];
};

static void *pool_alloc(SIZE_T size)
{
    void *p = ExAllocatePoolWithTag(NonPagedPool, size, POOL_TAG);
    if (p)
        InterlockedIncrement(&pool_live);
    return p;
}

static void pool_free(void *p)
{
    ExFreePoolWithTag(p, POOL_TAG);
    InterlockedDecrement(&pool_live);
}

static IRP *irp_alloc(void)
{
    IRP *irp = IoAllocateIrp(1, FALSE);
    if (irp)
        InterlockedIncrement(&irps_live);
    return irp;
}

static void irp_free(IRP *irp)
{
    IoFreeIrp(irp);
    InterlockedDecrement(&irps_live);
}

static MDL *mdl_alloc(const void *buf, ULONG len)
{
    MDL *mdl = IoAllocateMdl((void *)buf, len, FALSE, FALSE, NULL);
    if (mdl)
    {
        MmBuildMdlForNonPagedPool(mdl);
        InterlockedIncrement(&mdls_live);
    }
    return mdl;
}

static void mdl_free(MDL *mdl)
{
    IoFreeMdl(mdl);
    InterlockedDecrement(&mdls_live);
}

/* ---- synchronous calls (PASSIVE_LEVEL only) ---- */

static NTSTATUS WINAPI sync_done(DEVICE_OBJECT *device, IRP *irp, void *context)
{
    struct sync_irp *s = context;
    (void)device;
    (void)irp;
    InterlockedExchange(&s->ran, 1);
    KeSetEvent(&s->done, IO_NO_INCREMENT, FALSE);
    return STATUS_MORE_PROCESSING_REQUIRED;
}

static void sync_prepare(struct sync_irp *s)
{
    IoReuseIrp(s->irp, STATUS_UNSUCCESSFUL);
    IoSetCompletionRoutine(s->irp, sync_done, s, TRUE, TRUE, TRUE);
    s->ran = 0;
}

/* The call's result once its IRP has completed. Wine returns STATUS_PENDING although the routine already
 * ran (the event is then set and the wait returns at once), and its stubs return an error without
 * completing the IRP at all: wait only when the call is pending or the routine has run. */
static NTSTATUS sync_wait(struct sync_irp *s, NTSTATUS returned)
{
    if (returned != STATUS_PENDING && !s->ran)
        return returned;
    KeWaitForSingleObject(&s->done, Executive, KernelMode, FALSE, NULL);
    return s->irp->IoStatus.Status;
}

static void close_socket(struct sync_irp *s, WSK_SOCKET *socket, BOOLEAN graceful)
{
    const WSK_PROVIDER_CONNECTION_DISPATCH *d = socket->Dispatch;
    if (graceful)
    {
        /* Windows' close is abortive; a FIN first lets the client read the whole last answer. Wine has no
         * WskDisconnect (a stub that never completes the IRP) and its close is graceful anyway. */
        sync_prepare(s);
        sync_wait(s, d->WskDisconnect(socket, NULL, 0, s->irp));
    }
    sync_prepare(s);
    sync_wait(s, d->Basic.WskCloseSocket(socket, s->irp));
}

/* ---- connections ---- */

static void conn_put(struct conn *c)
{
    KIRQL irql;
    if (InterlockedDecrement(&c->refs) != 0)
        return;
    KeAcquireSpinLock(&lock, &irql);
    RemoveEntryList(&c->link);
    KeReleaseSpinLock(&lock, irql);
    mdl_free(c->mdl);
    irp_free(c->irp);
    pool_free(c);
    if (InterlockedDecrement(&connections_live) == 0 && stopping)
        KeSetEvent(&all_freed, IO_NO_INCREMENT, FALSE);
}

/* Hands the socket (and its reference) to the reaper; the machine issues nothing more. Owner only. */
static void conn_end(struct conn *c, BOOLEAN graceful)
{
    KIRQL irql;
    c->ended = TRUE;
    c->graceful = graceful;
    KeAcquireSpinLock(&lock, &irql);
    InsertTailList(&to_close, &c->close_link);
    KeReleaseSpinLock(&lock, irql);
    KeSetEvent(&reaper_wake, IO_NO_INCREMENT, FALSE);
}

static void conn_kick(struct conn *c);

static NTSTATUS WINAPI conn_irp_done(DEVICE_OBJECT *device, IRP *irp, void *context)
{
    struct conn *c = context;
    (void)device;
    c->status = irp->IoStatus.Status;
    c->information = irp->IoStatus.Information;
    InterlockedExchange(&c->irp_pending, 0);
    conn_kick(c);
    conn_put(c); /* the pending IRP's reference; may free c and this IRP, which is allowed here */
    return STATUS_MORE_PROCESSING_REQUIRED;
}

static void conn_issue(struct conn *c, enum op op, MDL *mdl, ULONG offset, ULONG len)
{
    const WSK_PROVIDER_CONNECTION_DISPATCH *d = c->socket->Dispatch;
    WSK_BUF buf = { mdl, offset, len };
    c->op = op;
    IoReuseIrp(c->irp, STATUS_UNSUCCESSFUL);
    IoSetCompletionRoutine(c->irp, conn_irp_done, c, TRUE, TRUE, TRUE);
    InterlockedIncrement(&c->refs);
    InterlockedExchange(&c->irp_pending, 1);
    /* The routine runs for every outcome (WSK completes every IRP it is given), so the returned status
     * adds nothing; the buffers always have an MDL, the one argument error that would skip it. */
    if (op == OP_RECEIVE)
        d->WskReceive(c->socket, &buf, 0, c->irp);
    else
        d->WskSend(c->socket, &buf, 0, c->irp);
}

/* One step of the machine: consume the last completion, then issue the next call or end. Owner only. */
static void conn_advance(struct conn *c)
{
    ULONG end;
    if (c->ended)
        return;
    if (c->irp_pending)
    {
        /* Kicked by unload while a receive waits: closing the socket cancels it. */
        if (stopping)
            conn_end(c, FALSE);
        return;
    }
    switch (c->op)
    {
    case OP_RECEIVE:
        if (c->status == STATUS_CANCELLED && !stopping)
            break; /* Wine: the thread that issued it exited (see WINE_THREAD_CANCEL); nothing was lost */
        if (!NT_SUCCESS(c->status) || c->information == 0)
        {
            conn_end(c, NT_SUCCESS(c->status)); /* 0 bytes: the client closed its side */
            return;
        }
        c->in_len += (ULONG)c->information;
        break;
    case OP_SEND:
        if (!NT_SUCCESS(c->status) || c->information == 0)
        {
            conn_end(c, FALSE);
            return;
        }
        c->sent += (ULONG)c->information;
        if (c->sent < c->response->len)
        {
            conn_issue(c, OP_SEND, c->response->mdl, c->sent, c->response->len - c->sent);
            return;
        }
        InterlockedIncrement64(&requests_served);
        if (c->response->close)
        {
            conn_end(c, TRUE);
            return;
        }
        /* Pipelined bytes move to the front: the next head starts at 0. */
        RtlMoveMemory(c->in, c->in + c->head_len, c->in_len - c->head_len);
        c->in_len -= c->head_len;
        c->scanned = 0;
        break;
    case OP_NONE:
        break;
    }
    c->op = OP_NONE;
    if (stopping)
    {
        conn_end(c, TRUE);
        return;
    }
    end = head_end(c->in, c->scanned, c->in_len);
    if (end)
    {
        c->head_len = end;
        c->response = &responses[answer(c->in, end)];
    }
    else if (c->in_len == IN_CAP)
    {
        c->head_len = c->in_len;
        c->response = &responses[R_TOO_LARGE];
    }
    else
    {
        /* The terminator may straddle this receive and the next one. */
        c->scanned = c->in_len > 3 ? c->in_len - 3 : 0;
        conn_issue(c, OP_RECEIVE, c->mdl, c->in_len, IN_CAP - c->in_len);
        return;
    }
    c->sent = 0;
    conn_issue(c, OP_SEND, c->response->mdl, 0, c->response->len);
}

/* The trampoline: run the machine here unless another thread runs it, which then runs it once more. */
static void conn_kick(struct conn *c)
{
    if (InterlockedIncrement(&c->busy) != 1)
        return;
    do
        conn_advance(c);
    while (InterlockedDecrement(&c->busy) != 0);
}

/* A new connection from WskAccept; FALSE if its memory cannot be had (the caller closes the socket). */
static BOOLEAN conn_start(WSK_SOCKET *socket)
{
    struct conn *c = pool_alloc(sizeof(*c));
    KIRQL irql;
    InterlockedIncrement64(&connections_accepted);
    if (!c)
        return FALSE;
    RtlZeroMemory(c, FIELD_OFFSET(struct conn, in));
    c->irp = irp_alloc();
    c->mdl = mdl_alloc(c->in, IN_CAP);
    if (!c->irp || !c->mdl)
    {
        if (c->irp)
            irp_free(c->irp);
        if (c->mdl)
            mdl_free(c->mdl);
        pool_free(c);
        return FALSE;
    }
    c->socket = socket;
    c->refs = 2; /* the socket, and this function's kick */
    InterlockedIncrement(&connections_live);
    KeAcquireSpinLock(&lock, &irql);
    InsertTailList(&connections, &c->link);
    KeReleaseSpinLock(&lock, irql);
    conn_kick(c);
    conn_put(c);
    return TRUE;
}

/* ---- the accept machine ---- */

static IRP *accept_irp;
static volatile LONG accept_busy, accept_pending;
static enum { A_NONE, A_ACCEPT, A_CLOSE } accept_op; /* what the last call on accept_irp was */
static BOOLEAN accept_quiet, accept_finished;
static NTSTATUS accept_status;
static ULONG_PTR accept_information;
static KEVENT listener_quiet; /* the machine will issue nothing more on the listener */
static KEVENT accept_idle;    /* ... and accept_irp is not pending */

static void accept_kick(void);

static NTSTATUS WINAPI accept_done(DEVICE_OBJECT *device, IRP *irp, void *context)
{
    (void)device;
    (void)context;
    accept_status = irp->IoStatus.Status;
    accept_information = irp->IoStatus.Information;
    InterlockedExchange(&accept_pending, 0);
    accept_kick();
    return STATUS_MORE_PROCESSING_REQUIRED;
}

static void accept_set_quiet(void)
{
    if (!accept_quiet)
    {
        accept_quiet = TRUE;
        KeSetEvent(&listener_quiet, IO_NO_INCREMENT, FALSE);
    }
}

static void accept_finish(void)
{
    accept_finished = TRUE;
    accept_set_quiet();
    KeSetEvent(&accept_idle, IO_NO_INCREMENT, FALSE);
}

static void accept_issue(void)
{
    IoReuseIrp(accept_irp, STATUS_UNSUCCESSFUL);
    IoSetCompletionRoutine(accept_irp, accept_done, NULL, TRUE, TRUE, TRUE);
    InterlockedExchange(&accept_pending, 1);
}

static void accept_advance(void)
{
    WSK_SOCKET *accepted;
    if (accept_finished)
        return;
    if (accept_pending)
    {
        if (stopping && accept_op == A_ACCEPT)
            accept_set_quiet(); /* unload may close the listener now, which cancels this accept */
        return;
    }
    if (accept_op == A_ACCEPT)
    {
        accepted = (WSK_SOCKET *)accept_information;
        if (NT_SUCCESS(accept_status) && accepted && !conn_start(accepted))
        {
            /* No memory for it: close it with this IRP (not the listener's socket: allowed here). */
            DbgPrint("c_wsk_http: out of memory for a connection; closing it\n");
            accept_op = A_CLOSE;
            accept_issue();
            ((const WSK_PROVIDER_CONNECTION_DISPATCH *)accepted->Dispatch)->Basic.WskCloseSocket(accepted,
                    accept_irp);
            return;
        }
        if (accept_status == STATUS_CANCELLED && !stopping)
            ; /* Wine: the thread that issued it exited (see WINE_THREAD_CANCEL); accept again */
        else if (!NT_SUCCESS(accept_status) && !stopping)
        {
            /* Not retried: a listener that fails once would fail in a tight loop. */
            DbgPrint("c_wsk_http: WskAccept failed: %#lx; no longer accepting\n", (unsigned long)accept_status);
            accept_finish();
            return;
        }
    }
    if (stopping)
    {
        accept_finish();
        return;
    }
    accept_op = A_ACCEPT;
    accept_issue();
    ((const WSK_PROVIDER_LISTEN_DISPATCH *)listener->Dispatch)->WskAccept(listener, 0, NULL, NULL, NULL, NULL,
            accept_irp);
}

static void accept_kick(void)
{
    if (InterlockedIncrement(&accept_busy) != 1)
        return;
    do
        accept_advance();
    while (InterlockedDecrement(&accept_busy) != 0);
}

/* ---- the reaper thread ---- */

static void WINAPI reaper(void *context)
{
    (void)context;
    for (;;)
    {
        KeWaitForSingleObject(&reaper_wake, Executive, KernelMode, FALSE, NULL);
        for (;;)
        {
            struct conn *c = NULL;
            KIRQL irql;
            KeAcquireSpinLock(&lock, &irql);
            if (!IsListEmpty(&to_close))
                c = CONTAINING_RECORD(RemoveHeadList(&to_close), struct conn, close_link);
            KeReleaseSpinLock(&lock, irql);
            if (!c)
                break;
            close_socket(&reaper_irp, c->socket, c->graceful);
            conn_put(c); /* the socket's reference */
        }
        if (reaper_exit)
            break;
    }
    PsTerminateSystemThread(STATUS_SUCCESS);
}

static NTSTATUS start_reaper(void)
{
    OBJECT_ATTRIBUTES attributes;
    HANDLE handle;
    NTSTATUS status;
    InitializeObjectAttributes(&attributes, NULL, OBJ_KERNEL_HANDLE, NULL, NULL);
    status = PsCreateSystemThread(&handle, THREAD_ALL_ACCESS, &attributes, NULL, NULL, reaper, NULL);
    if (!NT_SUCCESS(status))
        return status;
    /* Unload waits on the thread object: it is signalled only once the thread has left this image. */
    status = ObReferenceObjectByHandle(handle, SYNCHRONIZE, NULL, KernelMode, &reaper_thread, NULL);
    if (!NT_SUCCESS(status))
    {
        reaper_exit = 1;
        KeSetEvent(&reaper_wake, IO_NO_INCREMENT, FALSE);
        ZwWaitForSingleObject(handle, FALSE, NULL);
    }
    ZwClose(handle);
    return status;
}

/* ---- load and unload ---- */

/* Undoes whatever DriverEntry got to, in reverse order; also the body of DriverUnload. */
static void teardown(void)
{
    int i;
    InterlockedExchange(&stopping, 1);
    if (listener)
    {
        if (accept_irp)
        {
            accept_kick();
            KeWaitForSingleObject(&listener_quiet, Executive, KernelMode, FALSE, NULL);
        }
        close_socket(&setup_irp, listener, FALSE); /* completes a pending WskAccept with STATUS_CANCELLED */
        if (accept_irp)
            KeWaitForSingleObject(&accept_idle, Executive, KernelMode, FALSE, NULL);
        listener = NULL;
    }
    /* No connection can start now. Kick each one once: its machine ends it and the reaper closes it. */
    for (;;)
    {
        struct conn *c = NULL;
        LIST_ENTRY *e;
        KIRQL irql;
        KeAcquireSpinLock(&lock, &irql);
        for (e = connections.Flink; e != &connections; e = e->Flink)
        {
            struct conn *candidate = CONTAINING_RECORD(e, struct conn, link);
            if (!candidate->stop_seen)
            {
                candidate->stop_seen = TRUE;
                InterlockedIncrement(&candidate->refs);
                c = candidate;
                break;
            }
        }
        KeReleaseSpinLock(&lock, irql);
        if (!c)
            break;
        conn_kick(c);
        conn_put(c);
    }
    if (InterlockedCompareExchange(&connections_live, 0, 0) != 0)
        KeWaitForSingleObject(&all_freed, Executive, KernelMode, FALSE, NULL);
    if (reaper_thread)
    {
        InterlockedExchange(&reaper_exit, 1);
        KeSetEvent(&reaper_wake, IO_NO_INCREMENT, FALSE);
        KeWaitForSingleObject(reaper_thread, Executive, KernelMode, FALSE, NULL);
        ObDereferenceObject(reaper_thread);
        reaper_thread = NULL;
    }
    if (accept_irp)
        irp_free(accept_irp);
    if (setup_irp.irp)
        irp_free(setup_irp.irp);
    if (reaper_irp.irp)
        irp_free(reaper_irp.irp);
    accept_irp = setup_irp.irp = reaper_irp.irp = NULL;
    for (i = 0; i < R_COUNT; i++)
        if (responses[i].mdl)
        {
            mdl_free(responses[i].mdl);
            responses[i].mdl = NULL;
        }
    if (captured)
        WskReleaseProviderNPI(&registration);
    if (registered)
        WskDeregister(&registration);
    captured = registered = FALSE;
}

static void WINAPI driver_unload(DRIVER_OBJECT *driver)
{
    (void)driver;
    teardown();
    DbgPrint("c_wsk_http: unload complete: accepted %ld, requests %ld, live: connections %ld, pool %ld, "
             "irps %ld, mdls %ld\n", (long)connections_accepted, (long)requests_served, (long)connections_live,
             (long)pool_live, (long)irps_live, (long)mdls_live);
}

static NTSTATUS start(void)
{
    static const WSK_CLIENT_DISPATCH client_dispatch = { MAKE_WSK_VERSION(1, 0), 0, NULL };
    static WSK_CLIENT_NPI client = { NULL, &client_dispatch };
    SOCKADDR_IN addr;
    NTSTATUS status;
    int i;

    for (i = 0; i < R_COUNT; i++)
        if (!(responses[i].mdl = mdl_alloc(responses[i].bytes, responses[i].len)))
            return STATUS_INSUFFICIENT_RESOURCES;
    if (!(setup_irp.irp = irp_alloc()) || !(reaper_irp.irp = irp_alloc()) || !(accept_irp = irp_alloc()))
        return STATUS_INSUFFICIENT_RESOURCES;
    if (!NT_SUCCESS(status = WskRegister(&client, &registration)))
        return status;
    registered = TRUE;
    if (!NT_SUCCESS(status = WskCaptureProviderNPI(&registration, WSK_INFINITE_WAIT, &provider)))
        return status;
    captured = TRUE;
    if (provider.Dispatch->Version < MAKE_WSK_VERSION(1, 0))
        return STATUS_NOT_SUPPORTED;
    if (!NT_SUCCESS(status = start_reaper()))
        return status;

    sync_prepare(&setup_irp);
    status = sync_wait(&setup_irp, provider.Dispatch->WskSocket(provider.Client, AF_INET, SOCK_STREAM,
            IPPROTO_TCP, WSK_FLAG_LISTEN_SOCKET, NULL, NULL, NULL, NULL, NULL, setup_irp.irp));
    if (!NT_SUCCESS(status))
        return status;
    listener = (WSK_SOCKET *)setup_irp.irp->IoStatus.Information;

    RtlZeroMemory(&addr, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = RtlUshortByteSwap(C_WSK_HTTP_PORT); /* network order; 0.0.0.0 */
    sync_prepare(&setup_irp);
    status = sync_wait(&setup_irp, ((const WSK_PROVIDER_LISTEN_DISPATCH *)listener->Dispatch)->WskBind(
            listener, (SOCKADDR *)&addr, 0, setup_irp.irp));
    if (!NT_SUCCESS(status))
        return status;
    accept_kick();
    return STATUS_SUCCESS;
}

NTSTATUS WINAPI DriverEntry(DRIVER_OBJECT *driver, UNICODE_STRING *registry_path)
{
    NTSTATUS status;
    (void)registry_path;
    KeInitializeSpinLock(&lock);
    InitializeListHead(&connections);
    InitializeListHead(&to_close);
    KeInitializeEvent(&reaper_wake, SynchronizationEvent, FALSE);
    KeInitializeEvent(&all_freed, NotificationEvent, FALSE);
    KeInitializeEvent(&listener_quiet, NotificationEvent, FALSE);
    KeInitializeEvent(&accept_idle, NotificationEvent, FALSE);
    KeInitializeEvent(&setup_irp.done, SynchronizationEvent, FALSE);
    KeInitializeEvent(&reaper_irp.done, SynchronizationEvent, FALSE);
    status = start();
    if (!NT_SUCCESS(status))
    {
        DbgPrint("c_wsk_http: start failed: %#lx\n", (unsigned long)status);
        teardown();
        return status;
    }
    driver->DriverUnload = driver_unload;
    DbgPrint("c_wsk_http: listening on 0.0.0.0:%d\n", C_WSK_HTTP_PORT);
    return STATUS_SUCCESS;
}
