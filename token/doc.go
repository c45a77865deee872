// Package token turns bearer tokens into principals, and issues tokens.
//
// Three kinds of bearer credential are understood (Chain tells them apart by
// their form, never by trying one after the other with a secret):
//
//   - API tokens ("atk_..."): server-issued, stored as digests in an
//     audittrail.TokenStore, revocable at once (APITokens);
//   - JWT access tokens of the configured OIDC issuers, checked with
//     github.com/coreos/go-oidc (signature against the issuer's JWKS,
//     issuer, audience, expiry with a small skew, an allow-list of
//     asymmetric algorithms) and mapped to a principal (Verifier);
//   - the static tokens of serve --reader-token/--producer-token/--admin-token.
//
// The built-in issuer (Issuer) lets a standalone deployment act as the OIDC
// issuer of its own API tokens: it serves a discovery document, its JWKS and
// a token endpoint that exchanges an API token (as an OAuth refresh token)
// for a short-lived signed access token, which Chain then verifies like any
// other issuer's, checking on every request that the API token behind it is
// still valid.
package token
