package bench

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
)

// Machine describes where the benchmark ran.
type Machine struct {
	CPUModel     string
	Cores        int
	Hypervisor   string
	Memory       string
	Kernel       string
	OS           string
	Go           string
	PostgreSQL   string
	ServerBinary string
	Filesystem   string
}

// DescribeMachine collects the machine facts of the report.
func DescribeMachine(ctx context.Context) Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version(), PostgreSQL: "not used"}
	if out, err := exec.CommandContext(ctx, "lscpu").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			v = strings.TrimSpace(v)
			switch strings.TrimSpace(k) {
			case "Model name":
				m.CPUModel = v
			case "Hypervisor vendor":
				m.Hypervisor = v
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				f := strings.Fields(v)
				if len(f) > 0 {
					var kb int64
					for _, c := range f[0] {
						kb = kb*10 + int64(c-'0')
					}
					m.Memory = bytesIEC(kb * 1024)
				}
			}
		}
	}
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		m.Kernel = utsString(u.Release[:])
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				m.OS = strings.Trim(v, `"`)
			}
		}
	}
	if out, err := exec.CommandContext(ctx, "df", "-T", os.TempDir()).Output(); err == nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if f := strings.Fields(lines[len(lines)-1]); len(f) > 1 {
			m.Filesystem = f[1] + " (" + f[0] + ")"
		}
	}
	return m
}

func utsString(b []int8) string {
	var s []byte
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}

// describeBinary returns the Go version and VCS revision a binary was built
// from (`go version -m`).
func describeBinary(bin string) string {
	out, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		return "?"
	}
	var goVer, rev, modified string
	for i, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if i == 0 && len(f) > 1 {
			goVer = f[len(f)-1]
		}
		if len(f) >= 2 && f[0] == "build" {
			if v, ok := strings.CutPrefix(f[1], "vcs.revision="); ok && len(v) >= 12 {
				rev = v[:12]
			}
			if v, ok := strings.CutPrefix(f[1], "vcs.modified="); ok && v == "true" {
				modified = " (with uncommitted changes)"
			}
		}
	}
	sum := ""
	if f, err := os.Open(bin); err == nil {
		h := sha256.New()
		if _, err := io.Copy(h, f); err == nil {
			sum = fmt.Sprintf(", sha256 %x", h.Sum(nil)[:6])
		}
		f.Close()
	}
	if rev == "" {
		return goVer + sum
	}
	return goVer + ", commit " + rev + modified + sum
}
