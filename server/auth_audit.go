package server

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/audittrail/audittrail"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/internal/wire"
)

// The self-audit of calls (docs/security.md): every SearchEvents call, every
// read of the log's entries (GetLogEntries), every creation and revocation
// of an API token and every backup is recorded as one event
// by the audit interceptor. It runs outside authentication, so that refused
// calls (UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED) are recorded
// too, and writes the event before the answer leaves: when the event cannot
// be written the call fails with UNAVAILABLE (fail closed), unless the
// auditor is configured to fail open. Either way the failure is counted in
// audittrail_self_audit_failures_total.

// auditState carries what the inner interceptors learn (the caller) out to
// the audit interceptor.
type auditState struct {
	p *audittrail.Principal
}

type auditKey struct{}

// noteAuthenticated records the caller for the request's log line and the
// audit event.
func noteAuthenticated(ctx context.Context, p *audittrail.Principal) {
	noteCaller(ctx, p.Name)
	if st, ok := ctx.Value(auditKey{}).(*auditState); ok {
		st.p = p
	}
}

// auditSpec says how a method is recorded.
type auditSpec struct {
	action   string
	readOnly bool
	// describe returns the resource and parameters of the call.
	describe func(req, resp any) (resource string, params map[string]string)
}

var auditedMethods = map[string]auditSpec{
	pb.EventService_SearchEvents_FullMethodName: {
		action:   audittrail.ActionSearchEvents,
		readOnly: true,
		describe: func(req, _ any) (string, map[string]string) {
			r, _ := req.(*pb.SearchEventsRequest)
			var f *audittrail.Filter
			if x, err := wire.FilterFromProto(r.GetFilter()); err == nil {
				f = &x
			}
			p := audittrail.SearchParameters(f, int(r.GetPageSize()), r.GetPageToken())
			if r.GetIncludeProofs() {
				p["include_proofs"] = "true"
			}
			return audittrail.SearchResource, p
		},
	},
	pb.LogService_GetLogEntries_FullMethodName: {
		action:   audittrail.ActionReadLogEntries,
		readOnly: true,
		describe: func(req, _ any) (string, map[string]string) {
			r, _ := req.(*pb.GetLogEntriesRequest)
			p := map[string]string{
				"start":     strconv.FormatUint(r.GetStart(), 10),
				"page_size": strconv.Itoa(int(r.GetPageSize())),
			}
			if r.GetIncludeProofs() {
				p["include_proofs"] = "true"
			}
			return audittrail.LogResource, p
		},
	},
	pb.AdminService_CreateApiToken_FullMethodName: {
		action: audittrail.ActionCreateToken,
		describe: func(req, resp any) (string, map[string]string) {
			r, _ := req.(*pb.CreateApiTokenRequest)
			p := map[string]string{"principal": r.GetPrincipal()}
			for i, role := range r.GetRoles() {
				if i < 8 {
					p["roles."+string(rune('0'+i))] = role
				}
			}
			if len(r.GetWorkspaces()) > 0 {
				p["workspaces"] = joinClip(r.GetWorkspaces(), 512)
			}
			if r.GetTtl() != nil {
				p["ttl"] = r.GetTtl().AsDuration().String()
			}
			res := audittrail.TokenResourcePrefix
			if out, ok := resp.(*pb.CreateApiTokenResponse); ok && out != nil {
				res += out.GetApiToken().GetId()
			}
			return res, p
		},
	},
	pb.AdminService_CreateBackup_FullMethodName: {
		action: audittrail.ActionCreateBackup,
		describe: func(req, resp any) (string, map[string]string) {
			r, _ := req.(*pb.CreateBackupRequest)
			name := r.GetName()
			if out, ok := resp.(*pb.CreateBackupResponse); ok && out != nil {
				name = out.GetName()
			}
			return audittrail.BackupResourcePrefix + name, map[string]string{"name": r.GetName()}
		},
	},
	pb.AdminService_RevokeApiToken_FullMethodName: {
		action: audittrail.ActionRevokeToken,
		describe: func(req, _ any) (string, map[string]string) {
			r, _ := req.(*pb.RevokeApiTokenRequest)
			return audittrail.TokenResourcePrefix + r.GetId(), map[string]string{"id": r.GetId()}
		},
	},
}

func joinClip(ss []string, n int) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += ","
		}
		out += s
		if len(out) > n {
			return out[:n]
		}
	}
	return out
}

// selfAudit is the audit interceptor with its metrics.
type selfAudit struct {
	auditor  *audittrail.SelfAuditor
	log      *slog.Logger
	events   *prometheus.CounterVec
	failures *prometheus.CounterVec
}

func newSelfAudit(sa audittrail.SelfAuditor, log *slog.Logger, reg prometheus.Registerer) *selfAudit {
	s := &selfAudit{log: log}
	s.events = registerCounterVec(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "audittrail_self_audit_events_total",
		Help: "Self-audit events written, by action.",
	}, []string{"action"}))
	s.failures = registerCounterVec(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "audittrail_self_audit_failures_total",
		Help: "Self-audit events that could not be written, by action and mode (closed: the call was refused; open: it was answered).",
	}, []string{"action", "mode"}))
	prev := sa.OnFailure
	mode := "closed"
	if sa.FailOpen {
		mode = "open"
	}
	sa.OnFailure = func(r *audittrail.AuditRecord, err error) {
		s.failures.WithLabelValues(r.Action, mode).Inc()
		s.log.Error("self-audit event not written", "action", r.Action, "principal", r.Principal, "mode", mode, "err", err)
		if prev != nil {
			prev(r, err)
		}
	}
	s.auditor = &sa
	return s
}

func registerCounterVec(reg prometheus.Registerer, c *prometheus.CounterVec) *prometheus.CounterVec {
	if err := reg.Register(c); err != nil {
		if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
			return are.ExistingCollector.(*prometheus.CounterVec)
		}
		panic(err)
	}
	return c
}

func (s *selfAudit) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	spec, ok := auditedMethods[info.FullMethod]
	if !ok {
		return handler(ctx, req)
	}
	meta := metaFrom(ctx)
	st := &auditState{}
	resp, err := handler(context.WithValue(ctx, auditKey{}, st), req)
	resource, params := spec.describe(req, resp)
	if requestNotRead(ctx) {
		// The caller did not authenticate, so its request was not
		// decoded (auth_early.go): there is nothing to summarise, and
		// the empty request's defaults would say what was not asked.
		params = map[string]string{"request_read": "false"}
	}
	code := status.Convert(err)
	rec := audittrail.AuditRecord{
		Time:       meta.arrival,
		SourceIP:   meta.remote,
		UserAgent:  meta.userAgent,
		Action:     spec.action,
		Resource:   resource,
		ReadOnly:   spec.readOnly,
		Status:     audittrail.Status{Code: int32(code.Code()), Message: code.Message()},
		Parameters: params,
	}
	if st.p != nil {
		rec.Principal, rec.Metadata = st.p.Name, authMetadata(st.p)
	}
	if rec.Time.IsZero() || rec.Time.After(time.Now()) {
		rec.Time = time.Now()
	}
	if aerr := s.auditor.Record(ctx, rec); aerr != nil {
		return nil, wire.ToStatus(aerr)
	}
	s.events.WithLabelValues(spec.action).Inc()
	return resp, err
}

// authMetadata is the metadata of a self-audit event that says how its
// principal authenticated: the method (static, api-token, oidc, issuer,
// mtls), the API token's id (which credential, for revoking the right one
// after a leak), the OIDC token's issuer (two issuers may both have a
// users/<sub> of the same name; it is the configured issuer URL, which the
// token's "iss" must equal, so its length is the operator's).
func authMetadata(p *audittrail.Principal) map[string]string {
	m := map[string]string{}
	for _, kv := range [...][2]string{{"auth_method", p.Method}, {"api_token_id", p.TokenID}, {"oidc_issuer", p.Issuer}} {
		if kv[1] != "" {
			m[kv[0]] = kv[1]
		}
	}
	return m
}
