/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tlsconn.h: TLS for warden's own transport (`transport h2`): the server context, built once
 * from tls_cert/tls_key/tls_client_ca, and the non-blocking I/O of one TLS connection. The
 * only file of the h2 transport that includes OpenSSL's ssl.h; no OpenSSL type crosses this
 * header.
 *
 * The context (one per server, shared read-only by every worker; never changed once built):
 * TLS 1.2 or 1.3, ECDHE with AEAD ciphers only for 1.2 (HTTP/2's cipher blocklist), no
 * renegotiation, no session tickets and no session cache (EMQX keeps 8 long-lived
 * connections per node: resumption gains nothing and keeps an old verified certificate
 * alive). ALPN: `h2` is selected; a client whose ALPN list lacks `h2` gets a fatal
 * no_application_protocol alert; a client sending no ALPN at all speaks HTTP/2 by prior
 * knowledge (EMQX's gun does). With tls_client_ca: a client certificate signed by one of
 * those CAs is required (their names are sent in the CertificateRequest).
 *
 * A connection: the caller owns the socket (non-blocking) and its epoll interest. Every call
 * returns at once; WD_TLSCONN_AGAIN means "call again when the socket is ready in the
 * direction(s) wd_tlsconn_wants gives". Either operation may need the other direction (TLS
 * 1.3 post-handshake messages): wd_tlsconn_wants includes WD_LOOP_WRITE while a read waits
 * for the socket to be writable, and WD_LOOP_READ while a write waits for it to be readable;
 * the caller then retries both on either event. A write that returned AGAIN must be retried
 * with the same bytes first (more may follow them; the buffer may have moved).
 */
#ifndef WD_TLSCONN_H
#define WD_TLSCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "core/config.h"

struct wd_tlsconn_ctx;
struct wd_tlsconn;

/* Results of wd_tlsconn_read/write besides a byte count (> 0). h2server.c uses the same
 * values for its plain sockets. */
#define WD_TLSCONN_EOF 0    /* read: the peer closed (close_notify, or TCP EOF on a plain socket) */
#define WD_TLSCONN_AGAIN -1 /* would block: wait for wd_tlsconn_wants */
#define WD_TLSCONN_ERROR -2 /* the connection is broken: close it */

/* Builds the server context from cfg->tls_cert, tls_key and tls_client_ca (checked by
 * wd_tls_load first: the same messages as `--check-config`). Returns WD_OK or WD_ETLS with
 * a message in err. */
int wd_tlsconn_ctx_new(const struct wd_config *cfg, struct wd_tlsconn_ctx **out, char *err,
                       size_t errcap);
/* Connections still open keep what they need alive. NULL is fine. */
void wd_tlsconn_ctx_free(struct wd_tlsconn_ctx *ctx);
/* Whether client certificates are required (mutual TLS). */
bool wd_tlsconn_ctx_mutual(const struct wd_tlsconn_ctx *ctx);

/* A server-side TLS connection on the accepted socket fd (borrowed: the caller closes it after
 * wd_tlsconn_free). ctx is borrowed; it may be freed before the connection. */
struct wd_tlsconn *wd_tlsconn_new(struct wd_tlsconn_ctx *ctx, int fd);
/* Sends close_notify once (without waiting for the peer's) if the connection is established
 * and no fatal error happened on it, then frees it. NULL is fine. */
void wd_tlsconn_free(struct wd_tlsconn *t);

/* Advances the handshake. WD_OK once it is complete, WD_TLSCONN_AGAIN, or WD_TLSCONN_ERROR
 * (wd_tlsconn_error says why). */
int wd_tlsconn_handshake(struct wd_tlsconn *t);

/* Reads decrypted bytes: their count, WD_TLSCONN_EOF, WD_TLSCONN_AGAIN or WD_TLSCONN_ERROR.
 * One call returns at most one TLS record. */
ssize_t wd_tlsconn_read(struct wd_tlsconn *t, void *buf, size_t cap);
/* Whether decrypted bytes wait inside the TLS layer (they wake no epoll: read them now). */
bool wd_tlsconn_pending(const struct wd_tlsconn *t);
/* Writes: the count of bytes taken (> 0), WD_TLSCONN_AGAIN or WD_TLSCONN_ERROR. */
ssize_t wd_tlsconn_write(struct wd_tlsconn *t, const void *p, size_t n);

/* The socket readiness (WD_LOOP_READ | WD_LOOP_WRITE) the pending handshake, or a read or
 * write that returned AGAIN in the other direction, waits for. */
unsigned wd_tlsconn_wants(const struct wd_tlsconn *t);

/* Why the connection failed (a static string; "" if it did not). */
const char *wd_tlsconn_error(const struct wd_tlsconn *t);

#endif
