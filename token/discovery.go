package token

import (
	"net/http"
	"strings"
)

// DiscoveryConfig describes the deployment to the H2O Cloud discovery
// clients (h2o-cloud-discovery, used by h2o_audit_trail.login()), spec §7.2.
type DiscoveryConfig struct {
	// Environment is the environment URL ("h2oCloudEnvironment"), usually
	// the server's public URL.
	Environment string
	// IssuerURL is the OIDC issuer the clients get their tokens from.
	IssuerURL string
	// ServiceURL is the public REST base URL of the audit trail
	// (services/audit-trail).
	ServiceURL string
	// PlatformClientID is the OAuth client id of clients/platform.
	PlatformClientID string
	// Version is reported as the service's and environment's version.
	Version string
}

// DiscoveryPrefix is where the discovery API is served.
const DiscoveryPrefix = "/.ai.h2o.cloud.discovery"

// DiscoveryRoutes returns the discovery endpoints: v1/environment,
// v1/services, v1/clients, and empty v1/links and v1/components. Lists are
// one page: no nextPageToken (the client pages while the key is present).
func DiscoveryRoutes(c DiscoveryConfig) []Route {
	env := strings.TrimRight(c.Environment, "/")
	svc := strings.TrimRight(c.ServiceURL, "/")
	json := func(v any) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, v) })
	}
	return []Route{
		{http.MethodGet, DiscoveryPrefix + "/v1/environment", json(map[string]any{"environment": map[string]any{
			"h2oCloudEnvironment":         env,
			"issuerUrl":                   strings.TrimRight(c.IssuerURL, "/"),
			"h2oCloudPlatformOauth2Scope": "",
			"h2oCloudVersion":             c.Version,
		}})},
		{http.MethodGet, DiscoveryPrefix + "/v1/services", json(map[string]any{"services": []any{map[string]any{
			"name":         "services/audit-trail",
			"displayName":  "Audit Trail",
			"uri":          svc,
			"version":      c.Version,
			"pythonClient": "h2o-audit-trail",
		}}})},
		{http.MethodGet, DiscoveryPrefix + "/v1/clients", json(map[string]any{"clients": []any{map[string]any{
			"name":           "clients/platform",
			"displayName":    "Audit Trail platform client",
			"oauth2ClientId": c.PlatformClientID,
		}}})},
		{http.MethodGet, DiscoveryPrefix + "/v1/links", json(map[string]any{"links": []any{}})},
		{http.MethodGet, DiscoveryPrefix + "/v1/components", json(map[string]any{"components": []any{}})},
	}
}
