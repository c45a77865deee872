package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/audittrail/audittrail"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
	"github.com/audittrail/audittrail/internal/wire"
)

// TokenCommand implements "audittrail token": it manages the API tokens of
// a running server through the AdminService of its internal listener.
type TokenCommand struct {
	Stdout, Stderr io.Writer
}

const tokenSynopsis = `usage: audittrail token create --principal NAME --role ROLE [--workspace W] [--ttl 90d] [flags]
       audittrail token list [--all] [flags]
       audittrail token revoke [flags] ID

Manages API tokens on a running server, through its internal listener, with
an administrator's token (serve --admin-token, or an API token with the admin
role). The server keeps only a digest of each token: create prints the secret
once. A revoked token stops working at once, and so do the access tokens the
server's built-in issuer exchanged for it.

Roles: auditor (reads every event), workspace_auditor (reads the events of
its --workspace list), producer (creates events; services/... only), admin
(manages tokens).

Examples:
  audittrail token create --principal users/alice --role auditor --ttl 90d
  audittrail token create --principal users/bob --role workspace_auditor --workspace w1 --workspace w2
  audittrail token create --principal services/appstore --role producer -o secret
  audittrail token list --all
  audittrail token revoke k3v9q2x7m4t8hfzd

Environment: AUDITTRAIL_INTERNAL_ADDR (--addr), AUDITTRAIL_ADMIN_TOKEN or
AUDITTRAIL_TOKEN (--token).
`

// Usage returns the help text.
func (c *TokenCommand) Usage() string {
	return usageText(tokenSynopsis, newTokenFlags(&tokenFlags{}))
}

type tokenFlags struct {
	addr, token, caFile string
	principal           string
	roles, workspaces   stringList
	ttl                 string
	description         string
	all                 bool
	format              string
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, splitList(v)...); return nil }

func newTokenFlags(f *tokenFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.StringVar(&f.addr, "addr", envDefault("127.0.0.1:8081", "AUDITTRAIL_INTERNAL_ADDR"), "`host:port` of the server's internal listener")
	fs.StringVar(&f.token, "token", envDefault("", "AUDITTRAIL_ADMIN_TOKEN", "AUDITTRAIL_TOKEN"), "bearer `token` of an administrator")
	fs.StringVar(&f.caFile, "ca-file", "", "connect with TLS, trusting the CA certificates in this PEM `file`")
	fs.StringVar(&f.principal, "principal", "", "create: the `principal` of the token (users/<id> or services/<name>)")
	fs.Var(&f.roles, "role", "create: a `role` of the token: auditor, workspace_auditor, producer or admin (repeatable)")
	fs.Var(&f.workspaces, "workspace", "create: a `workspace` of a workspace_auditor token (repeatable; w1 or workspaces/w1)")
	fs.StringVar(&f.ttl, "ttl", "", "create: lifetime of the token, e.g. 90d or 12h (default: no expiry)")
	fs.StringVar(&f.description, "description", "", "create: a `note` on the token")
	fs.BoolVar(&f.all, "all", false, "list: also revoked and expired tokens")
	fs.StringVar(&f.format, "o", "text", "output `format`: text, json, or (create) secret: the token alone")
	return fs
}

// Run runs the command with the arguments after "token".
func (c *TokenCommand) Run(ctx context.Context, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			fmt.Fprint(c.Stdout, c.Usage())
			return nil
		}
		return usageErrorf("token needs a subcommand: create, list or revoke (see -h)")
	}
	sub, rest := args[0], args[1:]
	var f tokenFlags
	fs := newTokenFlags(&f)
	if err := parseFlags(fs, rest, c.Usage(), c.Stdout); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	// Flags may follow the positional arguments too ("revoke ID --addr X").
	var pos []string
	for fs.NArg() > 0 {
		pos = append(pos, fs.Arg(0))
		if err := parseFlags(fs, fs.Args()[1:], c.Usage(), c.Stdout); err != nil {
			return err
		}
	}
	_ = fs.Parse(pos)
	if f.format != "text" && f.format != "json" && !(f.format == "secret" && sub == "create") {
		return usageErrorf("-o %q: use text, json (or secret with create)", f.format)
	}
	var req any
	switch sub {
	case "create":
		if fs.NArg() > 0 {
			return usageErrorf("unexpected argument %q (see -h)", fs.Arg(0))
		}
		if f.principal == "" || len(f.roles) == 0 {
			return usageErrorf("token create needs --principal and --role")
		}
		r := &pb.CreateApiTokenRequest{Principal: f.principal, Roles: f.roles, Workspaces: f.workspaces, Description: f.description}
		if f.ttl != "" {
			d, err := parseAgo(f.ttl)
			if err != nil {
				return usageErrorf("--ttl: %v", err)
			}
			r.Ttl = durationpb.New(d)
		}
		req = r
	case "list":
		if fs.NArg() > 0 {
			return usageErrorf("unexpected argument %q (see -h)", fs.Arg(0))
		}
		req = &pb.ListApiTokensRequest{ShowAll: f.all}
	case "revoke":
		if fs.NArg() != 1 {
			return usageErrorf("token revoke takes the id of one token (see token list)")
		}
		req = &pb.RevokeApiTokenRequest{Id: fs.Arg(0)}
	default:
		return usageErrorf("unknown token subcommand %q: create, list or revoke", sub)
	}
	conn, err := dialAdmin(f.addr, f.token, f.caFile)
	if err != nil {
		return err
	}
	defer conn.Close()
	rpc := pb.NewAdminServiceClient(conn)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	switch r := req.(type) {
	case *pb.CreateApiTokenRequest:
		resp, err := rpc.CreateApiToken(ctx, r)
		if err != nil {
			return rpcError(err)
		}
		switch f.format {
		case "secret":
			fmt.Fprintln(c.Stdout, resp.GetSecret())
		case "json":
			return printJSON(c.Stdout, resp)
		default:
			printTokens(c.Stdout, []*pb.ApiToken{resp.GetApiToken()})
			fmt.Fprintf(c.Stdout, "\ntoken: %s\n(shown once: the server keeps only its digest)\n", resp.GetSecret())
		}
	case *pb.ListApiTokensRequest:
		resp, err := rpc.ListApiTokens(ctx, r)
		if err != nil {
			return rpcError(err)
		}
		if f.format == "json" {
			return printJSON(c.Stdout, resp)
		}
		printTokens(c.Stdout, resp.GetApiTokens())
	case *pb.RevokeApiTokenRequest:
		resp, err := rpc.RevokeApiToken(ctx, r)
		if err != nil {
			return rpcError(err)
		}
		if f.format == "json" {
			return printJSON(c.Stdout, resp)
		}
		fmt.Fprintf(c.Stdout, "revoked %s (%s) at %s\n", resp.GetApiToken().GetId(), resp.GetApiToken().GetPrincipal(),
			resp.GetApiToken().GetRevokeTime().AsTime().Format(time.RFC3339))
	}
	return nil
}

func rpcError(err error) error {
	return errors.New(audittrail.ErrorMessage(wire.FromStatus(err)))
}

// printJSON writes m as indented API JSON. protojson's indented output has
// one or two spaces after each colon, depending on a hash of the binary
// (its spacing varies on purpose); json.Indent writes one, in every build.
func printJSON(w io.Writer, m proto.Message) error {
	b, err := jsonOptions.Marshal(m)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err = w.Write(out.Bytes())
	return err
}

func printTokens(w io.Writer, ts []*pb.ApiToken) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPRINCIPAL\tROLES\tWORKSPACES\tCREATED\tEXPIRES\tSTATUS")
	now := time.Now()
	for _, t := range ts {
		exp, status := "never", "active"
		if t.GetExpireTime() != nil {
			exp = t.GetExpireTime().AsTime().Format(time.RFC3339)
			if !now.Before(t.GetExpireTime().AsTime()) {
				status = "expired"
			}
		}
		if t.GetRevokeTime() != nil {
			status = "revoked " + t.GetRevokeTime().AsTime().Format(time.RFC3339)
		}
		ws := strings.Join(t.GetWorkspaces(), ",")
		if ws == "" {
			ws = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.GetId(), t.GetPrincipal(), strings.Join(t.GetRoles(), ","), ws,
			t.GetCreateTime().AsTime().Format(time.RFC3339), exp, status)
	}
	tw.Flush()
}

// dialAdmin connects to the internal listener as the administrator whose
// token is given (required).
func dialAdmin(addr, token, caFile string) (*grpc.ClientConn, error) {
	if token == "" {
		return nil, usageErrorf("--token: an administrator's token is required (or AUDITTRAIL_ADMIN_TOKEN)")
	}
	secure := caFile != "" || strings.HasPrefix(addr, "https://")
	addr = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(addr, "http://"), "https://"), "/")
	creds := insecure.NewCredentials()
	if secure {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if caFile != "" {
			pem, err := os.ReadFile(caFile)
			if err != nil {
				return nil, usageErrorf("--ca-file: %v", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, usageErrorf("--ca-file %s holds no PEM certificate", caFile)
			}
		}
		creds = credentials.NewTLS(tc)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds),
		grpc.WithPerRPCCredentials(adminBearer{token: token, secure: secure}))
	if err != nil {
		return nil, usageErrorf("--addr: %v", err)
	}
	return conn, nil
}

type adminBearer struct {
	token  string
	secure bool
}

func (b adminBearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

func (b adminBearer) RequireTransportSecurity() bool { return b.secure }
