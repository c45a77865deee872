package pebblestore

import (
	"os"
	"strconv"
	"strings"
)

// availableMemory returns the memory the process may use in bytes: the
// smaller of the physical memory (/proc/meminfo) and the cgroup v2 or v1
// limit, or 0 when neither can be read (another OS: the caller falls back
// to a fixed size).
func availableMemory() uint64 {
	mem := memTotal()
	for _, f := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if lim, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && lim > 0 && (mem == 0 || lim < mem) {
			mem = lim // "max" (no limit) does not parse and is skipped
		}
	}
	return mem
}

func memTotal() uint64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				if kb, err := strconv.ParseUint(f[0], 10, 64); err == nil {
					return kb << 10
				}
			}
		}
	}
	return 0
}
