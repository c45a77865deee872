package keycloak_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/audittrail/audittrail"
	"github.com/audittrail/audittrail/keycloak"
)

// The events below are as Keycloak 26.5's admin API returns them (read from
// a real Keycloak's /admin/realms/acme/events and admin-events).
var (
	login = keycloak.UserEvent{
		ID: "c3cd511d-a2fd-4f4b-8ddb-8e3736d1d1bc", Time: 1795994350075, Type: "LOGIN",
		RealmID: "9f70edc5-7e8b-445f-b06a-98e454a86591", ClientID: "app",
		UserID: "158001b7-f150-4f38-957b-045cab2d9807", SessionID: "LnNgNHV5xgYtGTaLSLjT9NcT", IPAddress: "127.0.0.1",
		Details: map[string]string{"auth_method": "openid-connect", "grant_type": "password", "username": "alice"},
	}
	loginError = keycloak.UserEvent{
		ID: "7d902f7f-3b13-4918-85c4-ad47032dd272", Time: 1795994353619, Type: "LOGIN_ERROR",
		RealmID: "9f70edc5-7e8b-445f-b06a-98e454a86591", ClientID: "app",
		UserID: "158001b7-f150-4f38-957b-045cab2d9807", IPAddress: "127.0.0.1", Error: "invalid_user_credentials",
		Details: map[string]string{"auth_method": "openid-connect", "grant_type": "password", "username": "alice"},
	}
	userCreated = keycloak.AdminEvent{
		ID: "cfba2075-a41a-41a3-b580-72d7bf445a6d", Time: 1795994331627, RealmID: "9f70edc5-7e8b-445f-b06a-98e454a86591",
		AuthDetails: keycloak.AuthDetails{
			RealmID: "b8ec8fc8-a83e-404b-95b4-b7d87f31f20d", ClientID: "25b26d3f-edbd-478a-9bd8-2762f0f20cb5",
			UserID: "9b514f54-ec10-4d57-8a7d-21b56758fd0a", IPAddress: "127.0.0.1",
		},
		OperationType: "CREATE", ResourceType: "USER", ResourcePath: "users/158001b7-f150-4f38-957b-045cab2d9807",
		Representation: `{"username":"alice","email":"alice@example.com","enabled":true}`,
	}
)

var conv = keycloak.Converter{Realm: "acme"}

func TestConvert(t *testing.T) {
	ok := &audittrail.Status{Code: 0}
	tests := []struct {
		name string
		got  audittrail.CreateRequest
		want audittrail.Event
	}{{
		name: "login",
		got:  conv.User(login),
		want: audittrail.Event{
			EventTime: time.UnixMilli(1795994350075).UTC(), EventSource: "thirdparty-chainguard-bitnamikeycloak",
			Action: "actions/keycloak/events/LOGIN", Status: ok, Principal: "users/158001b7-f150-4f38-957b-045cab2d9807",
			SourceIP: "127.0.0.1", Resource: "realms/acme/clients/app", Type: audittrail.TypeAPI,
			Metadata: map[string]string{
				"kc_kind": "user", "kc_realm": "acme", "kc_type": "LOGIN", "kc_event_id": login.ID, "kc_client_id": "app",
				"kc_session_id": "LnNgNHV5xgYtGTaLSLjT9NcT", "kc_user_id": login.UserID,
				"kc_detail_auth_method": "openid-connect", "kc_detail_grant_type": "password", "kc_detail_username": "alice",
			},
		},
	}, {
		name: "failed login",
		got:  conv.User(loginError),
		want: audittrail.Event{
			EventTime: time.UnixMilli(1795994353619).UTC(), EventSource: "thirdparty-chainguard-bitnamikeycloak",
			Action: "actions/keycloak/events/LOGIN_ERROR", Status: &audittrail.Status{Code: 16, Message: "invalid_user_credentials"},
			Principal: "users/158001b7-f150-4f38-957b-045cab2d9807", SourceIP: "127.0.0.1", Resource: "realms/acme/clients/app",
			Type: audittrail.TypeAPI,
			Metadata: map[string]string{
				"kc_kind": "user", "kc_realm": "acme", "kc_type": "LOGIN_ERROR", "kc_event_id": loginError.ID, "kc_client_id": "app",
				"kc_user_id":            loginError.UserID,
				"kc_detail_auth_method": "openid-connect", "kc_detail_grant_type": "password", "kc_detail_username": "alice",
			},
		},
	}, {
		name: "unknown user, no address, refused",
		got: keycloak.Converter{Realm: "acme", EventSource: "kc"}.User(keycloak.UserEvent{
			Time: 1000, Type: "UPDATE_CONSENT_ERROR", Error: "access_denied", IPAddress: "10.0.0.1, 10.0.0.2",
			Details: map[string]string{"Redirect-URI": "https://app/cb", "__": "dropped: nothing left of its key"},
		}),
		want: audittrail.Event{
			EventTime: time.UnixMilli(1000).UTC(), EventSource: "kc", Action: "actions/keycloak/events/UPDATE_CONSENT_ERROR",
			Status: &audittrail.Status{Code: 7, Message: "access_denied"}, Principal: "users/unknown", SourceIP: "0.0.0.0",
			Resource: "realms/acme", Type: audittrail.TypeAPI,
			Metadata: map[string]string{
				"kc_kind": "user", "kc_realm": "acme", "kc_type": "UPDATE_CONSENT_ERROR", "kc_ip_address": "10.0.0.1, 10.0.0.2",
				"kc_detail_redirect_uri": "https://app/cb", "kc_details_dropped": "1",
			},
		},
	}, {
		name: "other error",
		got:  conv.User(keycloak.UserEvent{Time: 1, Type: "SEND_VERIFY_EMAIL_ERROR", Error: "email_send_failed", IPAddress: "::1"}),
		want: audittrail.Event{
			EventTime: time.UnixMilli(1).UTC(), EventSource: "thirdparty-chainguard-bitnamikeycloak",
			Action: "actions/keycloak/events/SEND_VERIFY_EMAIL_ERROR", Status: &audittrail.Status{Code: 2, Message: "email_send_failed"},
			Principal: "users/unknown", SourceIP: "::1", Resource: "realms/acme", Type: audittrail.TypeAPI,
			Metadata: map[string]string{"kc_kind": "user", "kc_realm": "acme", "kc_type": "SEND_VERIFY_EMAIL_ERROR"},
		},
	}, {
		name: "admin create",
		got:  conv.Admin(userCreated),
		want: audittrail.Event{
			EventTime: time.UnixMilli(1795994331627).UTC(), EventSource: "thirdparty-chainguard-bitnamikeycloak",
			Action: "actions/keycloak/admin/USER/CREATE", Status: ok, Principal: "users/9b514f54-ec10-4d57-8a7d-21b56758fd0a",
			SourceIP: "127.0.0.1", Resource: "realms/acme/users/158001b7-f150-4f38-957b-045cab2d9807", Type: audittrail.TypeAPI,
			Metadata: map[string]string{
				"kc_kind": "admin", "kc_realm": "acme", "kc_operation_type": "CREATE", "kc_resource_type": "USER",
				"kc_event_id": userCreated.ID, "kc_client_id": "25b26d3f-edbd-478a-9bd8-2762f0f20cb5",
				"kc_user_id": "9b514f54-ec10-4d57-8a7d-21b56758fd0a", "kc_auth_realm_id": "b8ec8fc8-a83e-404b-95b4-b7d87f31f20d",
			},
		},
	}, {
		name: "admin error",
		got: conv.Admin(keycloak.AdminEvent{Time: 5, OperationType: "DELETE", ResourceType: "CLIENT", ResourcePath: "/clients/x/",
			Error: "unknown_error", AuthDetails: keycloak.AuthDetails{IPAddress: "2001:db8::1"}}),
		want: audittrail.Event{
			EventTime: time.UnixMilli(5).UTC(), EventSource: "thirdparty-chainguard-bitnamikeycloak",
			Action: "actions/keycloak/admin/CLIENT/DELETE", Status: &audittrail.Status{Code: 2, Message: "unknown_error"},
			Principal: "users/unknown", SourceIP: "2001:db8::1", Resource: "realms/acme/clients/x", Type: audittrail.TypeAPI,
			Metadata: map[string]string{"kc_kind": "admin", "kc_realm": "acme", "kc_operation_type": "DELETE", "kc_resource_type": "CLIENT"},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.got.Event.Event); diff != "" {
				t.Errorf("event (-want +got):\n%s", diff)
			}
			if _, err := audittrail.PrepareNewEvent(tt.got.EventID, tt.got.Event, time.Now(), false); err != nil {
				t.Errorf("the service refuses it: %v", err)
			}
		})
	}
}

// TestEventID: ids are UUIDv4 in form (the service accepts no other),
// stable (a re-read event is the same event), and differ by realm, kind
// and Keycloak's id; an event without an id is identified by its content.
func TestEventID(t *testing.T) {
	// Pinned: a change would make every event read again a new one.
	if got, want := conv.User(login).EventID, keycloak.EventID("acme", keycloak.KindUser, "id:"+login.ID); got != want {
		t.Errorf("login's id %s, want %s", got, want)
	}
	if got, want := keycloak.EventID("acme", keycloak.KindUser, "id:x"), "36d7cb1a-5b04-4183-b6ad-194c3214ab67"; got != want {
		t.Errorf("EventID changed: %s, was %s", got, want)
	}
	ids := map[string]string{}
	add := func(name, id string) {
		t.Helper()
		if err := audittrail.ValidateEventID(id); err != nil {
			t.Errorf("%s: %s: %v", name, id, err)
		}
		if other, dup := ids[id]; dup {
			t.Errorf("%s and %s have the same id %s", name, other, id)
		}
		ids[id] = name
	}
	add("login", conv.User(login).EventID)
	add("login in another realm", keycloak.Converter{Realm: "other"}.User(login).EventID)
	add("admin event with login's id", conv.Admin(keycloak.AdminEvent{ID: login.ID}).EventID)
	add("failed login", conv.User(loginError).EventID)
	noID := loginError
	noID.ID = ""
	add("failed login without id", conv.User(noID).EventID)
	later := noID
	later.Time++
	add("failed login without id, a millisecond later", conv.User(later).EventID)
	if a, b := conv.User(noID), conv.User(noID); a.EventID != b.EventID || !cmp.Equal(a, b) {
		t.Errorf("converting the same event twice differs:\n%s", cmp.Diff(a, b))
	}
}

// TestConvertLimits: whatever Keycloak sends, the event stays within the
// service's limits (docs/limits.md, "Keycloak forwarding").
func TestConvertLimits(t *testing.T) {
	details := map[string]string{}
	for i := range 100 {
		details[strings.Repeat("k", 40)+string(rune('a'+i%26))+strings.Repeat("x", i/26)] = strings.Repeat("é", 3000)
	}
	details["Very-Long-"+strings.Repeat("Key", 40)] = "v"
	long := strings.Repeat("x", 5000)
	got := keycloak.Converter{Realm: long}.User(keycloak.UserEvent{
		ID: long, Time: 1, Type: long, ClientID: long, UserID: long, SessionID: long, IPAddress: long, Error: strings.Repeat("e", 10000),
		Details: details,
	})
	e := got.Event.Event
	if _, err := audittrail.PrepareNewEvent(got.EventID, got.Event, time.Now(), false); err != nil {
		t.Fatalf("the service refuses it: %v", err)
	}
	kept := 0
	for k, v := range e.Metadata {
		if strings.HasPrefix(k, "kc_detail_") {
			kept++
			if len(v) > keycloak.MaxDetailValueLen {
				t.Errorf("%s has %d bytes", k, len(v))
			}
		}
	}
	if kept != keycloak.MaxDetails || e.Metadata["kc_details_dropped"] != "69" {
		t.Errorf("kept %d details, dropped %s; want %d kept, 69 dropped", kept, e.Metadata["kc_details_dropped"], keycloak.MaxDetails)
	}
	if e.Metadata["kc_detail_"+strings.Repeat("k", 40)+"a"] != strings.Repeat("é", keycloak.MaxDetailValueLen/2) {
		t.Errorf("a value is not cut at a character boundary to %d bytes", keycloak.MaxDetailValueLen)
	}
}
