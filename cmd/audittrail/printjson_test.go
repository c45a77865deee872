package main

import (
	"bytes"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/audittrail/audittrail/internal/gen/audittrailv1"
)

// TestPrintJSON: "token ... -o json" and the backup commands print the same
// bytes in every build: protojson's indented output has one or two spaces
// after a colon depending on the binary.
func TestPrintJSON(t *testing.T) {
	var b bytes.Buffer
	err := printJSON(&b, &pb.CreateApiTokenResponse{
		ApiToken: &pb.ApiToken{Id: "t1", Principal: "users/alice", Roles: []string{"auditor"}, CreateTime: timestamppb.New(time.Unix(0, 0))},
		Secret:   "s: 1, 2",
	})
	want := `{
  "apiToken": {
    "id": "t1",
    "principal": "users/alice",
    "roles": [
      "auditor"
    ],
    "workspaces": [],
    "description": "",
    "creator": "",
    "createTime": "1970-01-01T00:00:00Z"
  },
  "secret": "s: 1, 2"
}
`
	if err != nil || b.String() != want {
		t.Errorf("printJSON: %q (%v), want %q", b.String(), err, want)
	}
}
