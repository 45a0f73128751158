"""Transport and identity: who is calling, proven by TLS, before any request is read.

- `tls` — the server's mutual-TLS context, uvicorn's protocol with the ASGI TLS
  extension and the request-head limit, and `build_server`;
- `proxied` — the mode behind a TLS-terminating proxy (RFC 9440 ``Client-Cert``);
- `serving` — the uvicorn server both build, which says when it really serves;
- `identity` — the peer a verified certificate names, the leaf check both modes share,
  and the partner CA's CRL;
- `issuance` — the development CA's issuance register (its format, and the reader);
- `admission` — which verified certificates are admitted: client leaf, named peer, not
  revoked, known (register or catalog pin), configured;
- `security_log` — the one place a refused certificate is logged;
- `pki_paths` — where the partner CA, the CRL, the register and the server's certificate
  live.
"""
