package server

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/audittrail/audittrail"
	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
)

// adminService implements the AdminService (API tokens, backups) over a
// TokenStore and a Backuper, either of which may be missing. It is
// registered on the internal listener only; every method needs the admin
// role (audittrail.CanManageTokens, CanBackup).
type adminService struct {
	pb.UnimplementedAdminServiceServer
	tokens  audittrail.TokenStore
	backups audittrail.Backuper
	now     func() time.Time
}

var (
	errNoTokens  = audittrail.Errorf(audittrail.EUnimplemented, "this server has no API token store")
	errNoBackups = audittrail.Errorf(audittrail.EUnimplemented,
		"this server takes no backups: with the PostgreSQL store, back up the database with PostgreSQL's tools (docs/postgres.md, \"Backups\")")
)

func (s *adminService) CreateBackup(ctx context.Context, req *pb.CreateBackupRequest) (*pb.CreateBackupResponse, error) {
	if err := audittrail.CanBackup(audittrail.PrincipalFromContext(ctx)); err != nil {
		return nil, toStatus(ctx, err)
	}
	if s.backups == nil {
		return nil, toStatus(ctx, errNoBackups)
	}
	b, err := s.backups.CreateBackup(ctx, req.GetName()) // it checks the name
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.CreateBackupResponse{Name: b.Name, Path: b.Path, Events: b.Events, SizeBytes: b.SizeBytes,
		CreateTime: timestamppb.New(b.CreateTime)}, nil
}

func (s *adminService) CreateApiToken(ctx context.Context, req *pb.CreateApiTokenRequest) (*pb.CreateApiTokenResponse, error) {
	p := audittrail.PrincipalFromContext(ctx)
	if err := audittrail.CanManageTokens(p); err != nil {
		return nil, toStatus(ctx, err)
	}
	if s.tokens == nil {
		return nil, toStatus(ctx, errNoTokens)
	}
	var roles []audittrail.Role
	for _, r := range req.GetRoles() {
		role, err := audittrail.ParseRole(r)
		if err != nil {
			return nil, toStatus(ctx, err)
		}
		roles = append(roles, role)
	}
	var ttl time.Duration
	if req.GetTtl() != nil {
		ttl = req.GetTtl().AsDuration()
	}
	t, secret, err := audittrail.NewAPIToken(audittrail.NewTokenRequest{
		Principal:   req.GetPrincipal(),
		Roles:       roles,
		Workspaces:  req.GetWorkspaces(),
		TTL:         ttl,
		Description: req.GetDescription(),
	}, p.Name, s.now())
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	if err := s.tokens.CreateToken(ctx, t); err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.CreateApiTokenResponse{ApiToken: apiTokenToProto(t), Secret: secret}, nil
}

func (s *adminService) ListApiTokens(ctx context.Context, req *pb.ListApiTokensRequest) (*pb.ListApiTokensResponse, error) {
	if err := audittrail.CanManageTokens(audittrail.PrincipalFromContext(ctx)); err != nil {
		return nil, toStatus(ctx, err)
	}
	if s.tokens == nil {
		return nil, toStatus(ctx, errNoTokens)
	}
	ts, err := s.tokens.ListTokens(ctx)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	out := &pb.ListApiTokensResponse{ApiTokens: []*pb.ApiToken{}}
	now := s.now()
	for _, t := range ts {
		if req.GetShowAll() || t.Active(now) {
			out.ApiTokens = append(out.ApiTokens, apiTokenToProto(t))
		}
	}
	return out, nil
}

func (s *adminService) RevokeApiToken(ctx context.Context, req *pb.RevokeApiTokenRequest) (*pb.RevokeApiTokenResponse, error) {
	if err := audittrail.CanManageTokens(audittrail.PrincipalFromContext(ctx)); err != nil {
		return nil, toStatus(ctx, err)
	}
	if s.tokens == nil {
		return nil, toStatus(ctx, errNoTokens)
	}
	if req.GetId() == "" {
		return nil, toStatus(ctx, audittrail.Errorf(audittrail.EInvalid, "id is required"))
	}
	t, err := s.tokens.RevokeToken(ctx, req.GetId(), s.now())
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &pb.RevokeApiTokenResponse{ApiToken: apiTokenToProto(t)}, nil
}

func apiTokenToProto(t *audittrail.APIToken) *pb.ApiToken {
	out := &pb.ApiToken{
		Id:          t.ID,
		Principal:   t.Principal,
		Workspaces:  t.Workspaces,
		Description: t.Description,
		Creator:     t.Creator,
		CreateTime:  timestamppb.New(t.CreateTime),
	}
	for _, r := range t.Roles {
		out.Roles = append(out.Roles, string(r))
	}
	if !t.ExpireTime.IsZero() {
		out.ExpireTime = timestamppb.New(t.ExpireTime)
	}
	if !t.RevokeTime.IsZero() {
		out.RevokeTime = timestamppb.New(t.RevokeTime)
	}
	return out
}
