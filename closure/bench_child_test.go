package closure

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentix/agentix-store/closure/nixtest"
	"github.com/agentix/agentix-store/kv"
	"github.com/agentix/agentix-store/store"
)

// The side-by-side benchmarks run each import in a child process (this test
// binary running TestImportChild), so that its peak RSS is one import's,
// measured as nix copy's is: the child's ru_maxrss.

// childResult is what TestImportChild prints.
type childResult struct {
	NS     int64  `json:"ns"`     // the timed import's duration
	Allocs uint64 `json:"allocs"` // heap allocations during it
	Bytes  uint64 `json:"bytes"`  // heap bytes allocated during it
	Reused int    `json:"reused"` // paths reused by it
	// At the highest VmRSS sampled (every 2 ms), AGENTIX_BENCH_RSS=1 only:
	// /proc/self/status's RssAnon and RssFile, and the Go runtime's
	// memory (runtime/metrics /memory/classes/total:bytes) and heap
	// objects, in MB.
	PeakRSS  float64 `json:"peak_rss,omitempty"`
	PeakAnon float64 `json:"peak_anon,omitempty"`
	PeakFile float64 `json:"peak_file,omitempty"`
	PeakGo   float64 `json:"peak_go,omitempty"`
	PeakHeap float64 `json:"peak_heap,omitempty"`
}

// residentByFile sums /proc/self/smaps' Rss by mapped file (base name,
// or the kind of anonymous mapping), in MB, largest first.
func residentByFile() string {
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return err.Error()
	}
	by := map[string]float64{}
	name := ""
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":"):
			name = "[anon]"
			if len(f) >= 6 {
				name = filepath.Base(f[5])
				if strings.HasSuffix(name, ".vlog") || strings.HasSuffix(name, ".sst") || strings.HasSuffix(name, ".mem") {
					name = "*" + filepath.Ext(name) + " " + name
				}
			}
		case len(f) == 3 && f[0] == "Rss:":
			kb, _ := strconv.ParseFloat(f[1], 64)
			by[name] += kb / 1024
		}
	}
	var out []string
	for k, v := range by {
		if v >= 0.5 {
			out = append(out, fmt.Sprintf("%s=%.1f", k, v))
		}
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// sampleRSS samples the process's memory every 2 ms until stop is closed
// and records the breakdown at the highest VmRSS in res.
func sampleRSS(res *childResult, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	samples := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/objects:bytes"}}
	field := func(status, name string) float64 {
		_, rest, ok := strings.Cut(status, name+":")
		if !ok {
			return 0
		}
		line, _, _ := strings.Cut(rest, "\n")
		kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(line), " kB"), 64)
		return kb / 1024
	}
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		b, err := os.ReadFile("/proc/self/status")
		if err != nil {
			return
		}
		st := string(b)
		if rss := field(st, "VmRSS"); rss > res.PeakRSS {
			metrics.Read(samples)
			res.PeakRSS, res.PeakAnon, res.PeakFile = rss, field(st, "RssAnon"), field(st, "RssFile")
			res.PeakGo = float64(samples[0].Value.Uint64()) / (1 << 20)
			res.PeakHeap = float64(samples[1].Value.Uint64()) / (1 << 20)
		}
	}
}

// TestImportChild is not a test: it is the child process of the
// benchmarks. With AGENTIX_IMPORT_CHILD=ROOT[,ROOT2] it imports ROOT into a
// fresh store in AGENTIX_IMPORT_DIR (then ROOT2, timing only the last
// import) with the CLI's memory limit and prints a childResult.
func TestImportChild(t *testing.T) {
	roots := os.Getenv("AGENTIX_IMPORT_CHILD")
	if roots == "" {
		t.Skip("the benchmarks' child process; runs only when they start it")
	}
	debug.SetMemoryLimit(int64(envInt("AGENTIX_BENCH_MEMLIMIT_MB", ImportMemoryLimit>>20)) << 20)
	db, err := kv.Open(os.Getenv("AGENTIX_IMPORT_DIR"), kv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(db, store.Options{})
	var res childResult
	if os.Getenv("AGENTIX_BENCH_RSS") == "1" {
		stop, done := make(chan struct{}), make(chan struct{})
		go sampleRSS(&res, stop, done)
		defer func() { close(stop); <-done; out, _ := json.Marshal(res); fmt.Printf("AGENTIX-CHILD-RSS %s\n", out) }()
	}
	list := strings.Split(roots, ",")
	for i, root := range list {
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		t0 := time.Now()
		r, err := Import(context.Background(), st, db, &LocalNix{}, root, ImportOptions{Jobs: envInt("AGENTIX_BENCH_JOBS", 0)})
		if err != nil {
			t.Fatal(err)
		}
		if i == len(list)-1 {
			res.NS = time.Since(t0).Nanoseconds()
			runtime.ReadMemStats(&m1)
			res.Allocs, res.Bytes, res.Reused = m1.Mallocs-m0.Mallocs, m1.TotalAlloc-m0.TotalAlloc, r.Reused
		}
	}
	if os.Getenv("AGENTIX_BENCH_RSS") == "1" {
		fmt.Printf("AGENTIX-CHILD-SMAPS %s\n", residentByFile())
	}
	st.Close()
	db.Close()
	out, _ := json.Marshal(res)
	fmt.Printf("AGENTIX-CHILD %s\n", out)
}

// childRun is one measured run: wall time, peak RSS in MB, allocations.
type childRun struct {
	d      time.Duration
	peakMB float64
	allocs uint64
	bytes  uint64 // heap bytes allocated
	reused int
}

func maxRSS(ps *os.ProcessState) float64 {
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return float64(ru.Maxrss) / 1024 // Linux: KiB
	}
	return 0
}

// importInChild imports roots (timing the last) in a fresh store in a child
// process.
func importInChild(b *testing.B, roots ...string) childRun {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestImportChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "AGENTIX_IMPORT_CHILD="+strings.Join(roots, ","), "AGENTIX_IMPORT_DIR="+b.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("import child: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	_, line, ok := strings.Cut(stdout.String(), "AGENTIX-CHILD ")
	if !ok {
		b.Fatalf("import child printed no result:\n%s", stdout.String())
	}
	line, _, _ = strings.Cut(line, "\n")
	if _, rss, ok := strings.Cut(stdout.String(), "AGENTIX-CHILD-RSS "); ok {
		rss, _, _ = strings.Cut(rss, "\n")
		b.Logf("import child memory at its peak RSS (MB): %s", rss)
	}
	if _, sm, ok := strings.Cut(stdout.String(), "AGENTIX-CHILD-SMAPS "); ok {
		sm, _, _ = strings.Cut(sm, "\n")
		b.Logf("import child resident by mapping at its end (MB): %s", sm)
	}
	var res childResult
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		b.Fatal(err)
	}
	return childRun{d: time.Duration(res.NS), peakMB: maxRSS(cmd.ProcessState), allocs: res.Allocs, bytes: res.Bytes, reused: res.Reused}
}

// nixCopyRun runs `nix copy --to file://DIR?compression=none root` into a
// fresh directory.
func nixCopyRun(b *testing.B, root string) childRun {
	b.Helper()
	cmd := exec.Command("nix", "copy", "--to", "file://"+b.TempDir()+"?compression=none", root)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("nix copy: %v\n%s", err, stderr.String())
	}
	return childRun{d: time.Since(t0), peakMB: maxRSS(cmd.ProcessState)}
}

// sideBySide runs, alternately, our import of root (each in a fresh store,
// after importing the roots in before untimed) and nix copy of root, and
// reports both systems' figures: seconds per op, MB/s, peak RSS, our
// allocations per op, and the speedup (nix copy's time over ours).
func sideBySide(b *testing.B, narBytes int64, root string, before ...string) {
	var imp, cp time.Duration
	var impPeak, cpPeak float64
	var allocs, allocBytes uint64
	for range b.N {
		r := importInChild(b, append(before, root)...)
		imp += r.d
		impPeak = max(impPeak, r.peakMB)
		allocs += r.allocs
		allocBytes += r.bytes
		c := nixCopyRun(b, root)
		cp += c.d
		cpPeak = max(cpPeak, c.peakMB)
	}
	nb := float64(b.N)
	b.ReportMetric(imp.Seconds()/nb, "import-s")
	b.ReportMetric(cp.Seconds()/nb, "nix-copy-s")
	b.ReportMetric(float64(narBytes)*nb/imp.Seconds()/1e6, "import-MB/s")
	b.ReportMetric(float64(narBytes)*nb/cp.Seconds()/1e6, "nix-copy-MB/s")
	b.ReportMetric(impPeak, "import-peak-MB")
	b.ReportMetric(cpPeak, "nix-copy-peak-MB")
	b.ReportMetric(float64(allocs)/nb, "import-allocs/op")
	b.ReportMetric(float64(allocBytes)/nb/1e6, "import-alloc-MB/op")
	b.ReportMetric(cp.Seconds()/imp.Seconds(), "speedup")
}

// closureNarBytes is the total NAR size of root's closure.
func closureNarBytes(b *testing.B, n *nixtest.Nix, root string) int64 {
	infos, err := ParsePathInfoJSON(n.PathInfoJSON(root), "")
	if err != nil {
		b.Fatal(err)
	}
	var total int64
	for _, pi := range infos {
		total += pi.NarSize
	}
	return total
}
