package audittrail_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestArchitecture keeps the layering of docs/design/architecture.md: the
// domain and the storage engines never depend on a transport, so protobuf and
// gRPC stay at the edge.
func TestArchitecture(t *testing.T) {
	forbidden := []string{"google.golang.org/grpc", "github.com/grpc-ecosystem/", "github.com/audittrail/audittrail/internal/gen", "github.com/audittrail/audittrail/server", "github.com/audittrail/audittrail/internal/wire"}
	for _, pkg := range []string{".", "./pebblestore", "./postgres", "./storetest", "./merkle", "./logsign"} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range forbidden {
				if strings.HasPrefix(dep, f) {
					t.Errorf("package %s depends on %s; storage and domain must not import transport code", pkg, dep)
				}
			}
		}
	}
}
