package audittrail

// Authorization decisions are plain functions of the principal so that they
// can be tested without servers.

// CanSearch reports whether p may search events, as an error to return.
func CanSearch(p *Principal) error {
	if p == nil {
		return Errorf(EUnauthenticated, "missing or invalid bearer token")
	}
	if !p.HasRole(RoleAuditor) {
		return Errorf(EPermissionDenied, "principal %q may not search events: it needs the auditor role", p.Name)
	}
	return nil
}

// CanCreate reports whether p may create events, as an error to return.
func CanCreate(p *Principal) error {
	if p == nil {
		return Errorf(EUnauthenticated, "missing or invalid bearer token")
	}
	if !p.HasRole(RoleProducer) {
		return Errorf(EPermissionDenied, "principal %q may not create events: it needs the producer role", p.Name)
	}
	return nil
}
