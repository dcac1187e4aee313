/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tls.h: loads and checks the TLS material named by the configuration before the server
 * builds its TLS context from it (tlsconn.c), and for `--check-config`. A bad certificate, a
 * key that does not belong to it or an unreadable CA stops warden at start, with the file
 * and the reason, instead of failing the first client's handshake.
 */
#ifndef WD_TLS_H
#define WD_TLS_H

#include <stddef.h>

#include "core/config.h"

struct wd_tls_material {
    char *cert_pem; /* server certificate chain */
    char *key_pem;  /* private key; wiped on cleanup */
    char *ca_pem;   /* client CA bundle for mutual TLS, or NULL */
};

/* Reads and validates cfg->tls_cert/tls_key/tls_client_ca. Returns WD_OK or WD_ETLS with
 * a message naming the file in err. */
int wd_tls_load(const struct wd_config *cfg, struct wd_tls_material *out, char *err, size_t errcap);
void wd_tls_cleanup(struct wd_tls_material *m);

#endif
