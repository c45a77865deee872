// Command audittrail is the audit trail service and its command-line client:
// "serve" runs the server; "search", "create", "token", "backup", "mirror",
// "window", "tail" and "keycloak" talk to a running one; "verify" and "keygen" work
// offline (mainUsage lists them).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/audittrail/audittrail/postgres"
)

// version is the version of the build, set by the linker:
// go build -ldflags "-X main.version=v1.2.3". Without it, the module version
// of the build (or "dev") is used.
var version string

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

const mainUsage = `usage: audittrail <command> [flags]

Commands:
  serve     run the server (public and internal listeners; embedded store or PostgreSQL)
  search    search the events of a running server
  create    create events on a running server (internal listener)
  token     create, list and revoke API tokens of a running server (internal listener)
  verify    verify the verifiable log offline: checkpoints, proofs, a stopped server's store
  backup    back up a running server's embedded store (internal listener)
  mirror    keep a verified copy of a running server's log in a directory
  window    print the events between two signed checkpoints, proven complete
  tail      follow a running server's log: print each new event once proven (for a SIEM)
  keycloak  forward a Keycloak realm's user and admin events to a running server (internal listener)
  keygen    create a signing key for the verifiable log (a new log, a key rotation)
  witness   run a witness that cosigns logs' checkpoints (c2sp.org/tlog-witness)
  version   print the version
  help      print this help, or "help <command>" for a command's

"audittrail <command> -h" prints the flags of a command.
`

// command is a subcommand.
type command interface {
	Run(ctx context.Context, args []string) error
	Usage() string
}

func commands(stdout, stderr io.Writer) map[string]command {
	return map[string]command{
		"serve":    &ServeCommand{Stdout: stdout, Stderr: stderr},
		"search":   &SearchCommand{Stdout: stdout, Stderr: stderr},
		"create":   &CreateCommand{Stdout: stdout, Stderr: stderr},
		"token":    &TokenCommand{Stdout: stdout, Stderr: stderr},
		"verify":   &VerifyCommand{Stdout: stdout, Stderr: stderr},
		"backup":   &BackupCommand{Stdout: stdout, Stderr: stderr},
		"mirror":   &MirrorCommand{Stdout: stdout, Stderr: stderr},
		"window":   &WindowCommand{Stdout: stdout, Stderr: stderr},
		"tail":     &TailCommand{Stdout: stdout, Stderr: stderr},
		"keycloak": &KeycloakCommand{Stdout: stdout, Stderr: stderr},
		"keygen":   &KeygenCommand{Stdout: stdout, Stderr: stderr},
		"witness":  &WitnessCommand{Stdout: stdout, Stderr: stderr},
	}
}

// versionUsage is the help of "version", which main handles itself (it has
// no flags, so no flag set to print them).
const versionUsage = `usage: audittrail version

Prints the build's version and its PostgreSQL schema version, two lines:

  audittrail VERSION
  postgres schema version N

VERSION is the one set at build time (go build -ldflags
"-X main.version=v1.2.3"), else the module version of the build, else
"dev"; GET /version of a server answers the same. N is the number of the
build's newest PostgreSQL migration, which a database's
minimum build version is compared with (docs/postgres.md, "Upgrades").

Exit status: 0, or 2 when given an argument.
`

func isHelpArg(a string) bool { return a == "-h" || a == "-help" || a == "--help" }

// programName is how the examples that serve --dev prints call this
// program: as it was started (./bin/audittrail after make run), so that
// they run when copied; "audittrail" in tests.
var programName = "audittrail"

func main() {
	programName = os.Args[0]
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the command line args and returns the exit status: 0 success, 1
// failure, 2 bad usage (or what an error asks for with ExitCode).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, mainUsage)
		return 2
	}
	cmds := commands(stdout, stderr)
	name, rest := args[0], args[1:]
	switch name {
	case "version", "-version", "--version":
		if len(rest) > 0 {
			if isHelpArg(rest[0]) {
				fmt.Fprint(stdout, versionUsage)
				return 0
			}
			fmt.Fprintf(stderr, "audittrail version: unexpected argument %q (see -h)\n", rest[0])
			return 2
		}
		// The schema version: the newest PostgreSQL migration of the
		// build, which a database's minimum build version is compared
		// with (docs/postgres.md, "Upgrades").
		fmt.Fprintf(stdout, "audittrail %s\npostgres schema version %d\n", buildVersion(), postgres.SchemaVersion())
		return 0
	case "help", "-h", "-help", "--help":
		// "help -h" is "<command> -h" for the command help: its help.
		if len(rest) == 0 || rest[0] == "help" || isHelpArg(rest[0]) {
			fmt.Fprint(stdout, mainUsage)
			return 0
		}
		if rest[0] == "version" {
			fmt.Fprint(stdout, versionUsage)
			return 0
		}
		c, ok := cmds[rest[0]]
		if !ok {
			fmt.Fprintf(stderr, "audittrail: unknown command %q\n\n%s", rest[0], mainUsage)
			return 2
		}
		fmt.Fprint(stdout, c.Usage())
		return 0
	}
	c, ok := cmds[name]
	if !ok {
		fmt.Fprintf(stderr, "audittrail: unknown command %q\n\n%s", name, mainUsage)
		return 2
	}
	if err := c.Run(ctx, rest); err != nil {
		fmt.Fprintf(stderr, "audittrail %s: %v\n", name, err)
		var ec interface{ ExitCode() int }
		if errors.As(err, &ec) {
			return ec.ExitCode()
		}
		return 1
	}
	return 0
}
