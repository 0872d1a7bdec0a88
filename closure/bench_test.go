package closure

import (
	"context"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentix/agentix-store/closure/nixtest"
	"github.com/agentix/agentix-store/kv"
	"github.com/agentix/agentix-store/store"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/nix-community/go-nix/pkg/narinfo/signature"
	"github.com/nix-community/go-nix/pkg/nixbase32"
)

// The large path of the benchmarks: a tree of AGENTIX_BENCH_TREE_MB MiB
// (default 175) in AGENTIX_BENCH_TREE_FILES files (default 15000), added
// with `nix-store --add-fixed --recursive sha256`. Its contents are
// pseudo-random (incompressible) and deterministic.
var (
	largeOnce sync.Once
	largePath string
	largeErr  error
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func largeTree(b *testing.B, n *nixtest.Nix) string {
	largeOnce.Do(func() {
		mb, files := envInt("AGENTIX_BENCH_TREE_MB", 175), envInt("AGENTIX_BENCH_TREE_FILES", 15000)
		dir := filepath.Join(os.TempDir(), fmt.Sprintf("agentix-bench-tree-%dM-%d", mb, files))
		os.RemoveAll(dir)
		r := rand.New(rand.NewSource(1))
		per := int64(mb) << 20 / int64(files)
		buf := make([]byte, 2*per+1)
		for i := range files {
			sub := filepath.Join(dir, fmt.Sprintf("d%03d", i%100))
			if i < 100 {
				if largeErr = os.MkdirAll(sub, 0o755); largeErr != nil {
					return
				}
			}
			size := r.Int63n(2*per + 1)
			r.Read(buf[:size])
			if largeErr = os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%05d", i)), buf[:size], 0o644); largeErr != nil {
				return
			}
		}
		var out string
		out, largeErr = n.Try("nix-store", "--add-fixed", "--recursive", "sha256", dir)
		os.RemoveAll(dir)
		if largeErr == nil {
			largePath = string(out[:len(out)-1])
		}
	})
	if largeErr != nil {
		b.Fatal(largeErr)
	}
	return largePath
}

func maxRSSMB() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024 // Linux: KiB
}

// BenchmarkImportLarge compares, in one run, importing the large path with
// Import (local Nix source), `nix copy --to file://DIR?compression=none` of
// the same path and `nix-store --dump` of it to /dev/null. Import runs with
// the soft memory limit the CLI sets (ImportMemoryLimit) and reports the peak
// RSS of the test process (child processes excluded) as peak-MB.
func BenchmarkImportLarge(b *testing.B) {
	n := nixtest.Require(b)
	p := largeTree(b, n)
	infos, err := ParsePathInfoJSON(n.PathInfoJSON(p), "")
	if err != nil {
		b.Fatal(err)
	}
	narSize := infos[0].NarSize
	// importOnce imports p into a fresh store and returns the time the
	// import took (opening and closing the store excluded).
	importOnce := func(b *testing.B) time.Duration {
		db, err := kv.Open(b.TempDir(), kv.Options{})
		if err != nil {
			b.Fatal(err)
		}
		st := store.New(db, store.Options{})
		t0 := time.Now()
		if _, err := Import(context.Background(), st, db, &LocalNix{}, p, ImportOptions{}); err != nil {
			b.Fatal(err)
		}
		d := time.Since(t0)
		st.Close()
		db.Close() // one open database at a time, so peak-MB is one import's
		return d
	}
	nixCopyOnce := func(b *testing.B) time.Duration {
		dir := b.TempDir()
		t0 := time.Now()
		n.For(b).Run("nix", "copy", "--to", "file://"+dir+"?compression=none", p)
		return time.Since(t0)
	}
	b.Run("agentix-import", func(b *testing.B) {
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(ImportMemoryLimit))
		b.SetBytes(narSize)
		var total time.Duration
		b.StopTimer()
		for range b.N {
			total += importOnce(b)
		}
		b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/op")
		b.ReportMetric(float64(narSize)*float64(b.N)/total.Seconds()/1e6, "MB/s")
		b.ReportMetric(maxRSSMB(), "peak-MB")
	})
	b.Run("nix-copy-file", func(b *testing.B) {
		b.SetBytes(narSize)
		for range b.N {
			nixCopyOnce(b)
		}
	})
	// Import (in a child process, so peak RSS is one import's) and nix
	// copy alternately, so that a machine whose load changes during the run
	// affects both alike: speedup is nix copy's time over Import's.
	b.Run("alternating", func(b *testing.B) { sideBySide(b, narSize, p) })
	b.Run("nix-store-dump", func(b *testing.B) {
		b.SetBytes(narSize)
		for range b.N {
			out, err := os.Create(os.DevNull)
			if err != nil {
				b.Fatal(err)
			}
			rc, err := (&LocalNix{}).NAR(context.Background(), infos[0])
			if err != nil {
				b.Fatal(err)
			}
			if _, err := out.ReadFrom(rc); err != nil {
				b.Fatal(err)
			}
			if err := rc.Close(); err != nil {
				b.Fatal(err)
			}
			out.Close()
		}
	})
}

// The system-shaped closure of the benchmarks: AGENTIX_BENCH_PACKAGES
// packages (default 800) of 1–800 KiB, each with a bin/ and a share/ file,
// and a top path referring to all of them (nixtest.Packages). Built once per
// machine: the paths stay in the Nix store, and a later build of the same
// expression finds them valid. packagesB differs from it by one package.
var (
	pkgsOnce     sync.Once
	pkgsA, pkgsB []string
	pkgsNarBytes int64
)

func packageClosures(b *testing.B, n *nixtest.Nix) (a, bb []string) {
	pkgsOnce.Do(func() {
		count := envInt("AGENTIX_BENCH_PACKAGES", 800)
		pkgsA = n.Packages(count, 1, 800, 13, "bench")
		pkgsB = n.Packages(count, 1, 800, 13, "bench", count/2)
		pkgsNarBytes = closureNarBytes(b, n, pkgsA[len(pkgsA)-1])
	})
	if pkgsA == nil {
		b.Fatal("building the package closures failed")
	}
	return pkgsA, pkgsB
}

// BenchmarkImport800Paths compares, in one run and alternately, importing a
// system-shaped closure (see packageClosures) with Import in a child process
// and `nix copy --to file://DIR?compression=none` of it, reporting both
// systems' time, MB/s and peak RSS. "reimport-one-changed" imports closure
// A, then (timed) closure B, which differs by one package (so by two paths:
// the package and the top path); "reimport-same" times importing A again.
func BenchmarkImport800Paths(b *testing.B) {
	n := nixtest.Require(b)
	a, bb := packageClosures(b, n)
	rootA, rootB := a[len(a)-1], bb[len(bb)-1]
	b.Logf("%d paths, %d NAR bytes", len(a), pkgsNarBytes)
	b.Run("alternating", func(b *testing.B) { sideBySide(b, pkgsNarBytes, rootA) })
	b.Run("agentix-import", func(b *testing.B) {
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(ImportMemoryLimit))
		b.ReportAllocs()
		b.SetBytes(pkgsNarBytes)
		for range b.N {
			b.StopTimer()
			db, err := kv.Open(b.TempDir(), kv.Options{})
			if err != nil {
				b.Fatal(err)
			}
			st := store.New(db, store.Options{})
			b.StartTimer()
			if _, err := Import(context.Background(), st, db, &LocalNix{}, rootA, ImportOptions{Jobs: envInt("AGENTIX_BENCH_JOBS", 0)}); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			st.Close()
			db.Close()
			b.StartTimer()
		}
	})
	for _, tc := range []struct {
		name   string
		before string
		reused int
	}{{"reimport-one-changed", rootA, len(a) - 2}, {"reimport-same", rootA, len(a)}} {
		b.Run(tc.name, func(b *testing.B) {
			root := rootB
			if tc.reused == len(a) {
				root = rootA
			}
			var total time.Duration
			var peak float64
			for range b.N {
				r := importInChild(b, tc.before, root)
				if r.reused != tc.reused {
					b.Fatalf("reused %d paths, want %d", r.reused, tc.reused)
				}
				total += r.d
				peak = max(peak, r.peakMB)
			}
			b.ReportMetric(total.Seconds()/float64(b.N), "import-s")
			b.ReportMetric(peak, "import-peak-MB")
		})
	}
}

// BenchmarkNixCopyFrom compares `nix copy --from` our binary cache handler
// with `nix copy --from` a file:// cache (compression=none) of the same large
// path, each into a fresh chroot store.
func BenchmarkNixCopyFrom(b *testing.B) {
	n := nixtest.Require(b)
	nixCopyFrom(b, n, largeTree(b, n))
}

// BenchmarkNixCopyFrom800Paths is BenchmarkNixCopyFrom of the system-shaped
// closure (see packageClosures).
func BenchmarkNixCopyFrom800Paths(b *testing.B) {
	n := nixtest.Require(b)
	a, _ := packageClosures(b, n)
	nixCopyFrom(b, n, a[len(a)-1])
}

func nixCopyFrom(b *testing.B, n *nixtest.Nix, p string) {
	st, db := newStore(b)
	res, err := Import(context.Background(), st, db, &LocalNix{}, p, ImportOptions{})
	if err != nil {
		b.Fatal(err)
	}
	sk, pk, _ := signature.GenerateKeypair("bench-1", nil)
	h, err := NewCacheHandler(st, db, sk, CacheOptions{})
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/nix/", countRequests(b, "agentix-cache", http.StripPrefix("/nix", h)))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	fileCache := b.TempDir()
	n.Run("nix", "copy", "--to", "file://"+fileCache+"?compression=none", p)
	// Sign the file cache with the same key so both copies check one signature.
	n.Run("nix", "store", "sign", "--recursive", "--store", "file://"+fileCache, "--key-file", writeKey(b, sk), p)

	copyFrom := func(b *testing.B, url string) time.Duration {
		root := filepath.Join(b.TempDir(), "root")
		t0 := time.Now()
		n.For(b).Run("nix", "copy", "--from", url, "--to", root, "--option", "trusted-public-keys", pk.String(), p)
		return time.Since(t0)
	}
	// The file cache served over HTTP by http.FileServer (sendfile, no
	// per-request work): what Nix's HTTP substituter costs by itself.
	static := httptest.NewServer(countRequests(b, "static-http", http.FileServer(http.Dir(fileCache))))
	defer static.Close()
	caches := []struct{ name, url string }{
		{"agentix-cache", srv.URL + "/nix"},
		{"file-cache", "file://" + fileCache},
		{"static-http-of-file-cache", static.URL},
	}
	for _, tc := range caches {
		b.Run(tc.name, func(b *testing.B) {
			var total time.Duration
			b.StopTimer()
			for range b.N {
				total += copyFrom(b, tc.url)
			}
			b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/op")
			b.ReportMetric(float64(res.NarBytes)*float64(b.N)/total.Seconds()/1e6, "MB/s")
		})
	}
	// Both alternately: ratio is our cache's time over the file cache's.
	b.Run("alternating", func(b *testing.B) {
		var ours, file, stat time.Duration
		for range b.N {
			ours += copyFrom(b, caches[0].url)
			file += copyFrom(b, caches[1].url)
			stat += copyFrom(b, caches[2].url)
		}
		b.ReportMetric(ours.Seconds()/float64(b.N), "agentix-cache-s")
		b.ReportMetric(file.Seconds()/float64(b.N), "file-cache-s")
		b.ReportMetric(stat.Seconds()/float64(b.N), "static-http-s")
		b.ReportMetric(ours.Seconds()/file.Seconds(), "ratio")
		b.ReportMetric(ours.Seconds()/stat.Seconds(), "ratio-to-static-http")
	})
}

// countRequests wraps h, logging at the end of b the requests it served by
// method, kind and status, and the time spent in it by kind.
func countRequests(b *testing.B, name string, h http.Handler) http.Handler {
	var mu sync.Mutex
	reqs := map[string]int{}
	inHandler := map[string]time.Duration{}
	b.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		b.Logf("%s: requests %v; time in the handler by kind %v", name, reqs, inHandler)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: 200}
		h.ServeHTTP(sw, r)
		kind := filepath.Ext(r.URL.Path)
		mu.Lock()
		reqs[fmt.Sprintf("%s %s %d", r.Method, kind, sw.status)]++
		inHandler[kind] += time.Since(t0)
		mu.Unlock()
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) { s.status = code; s.ResponseWriter.WriteHeader(code) }

// ReadFrom keeps http.ServeContent's sendfile-or-buffer path.
func (s *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(s.ResponseWriter, r)
}

func writeKey(b *testing.B, sk signature.SecretKey) string {
	f := filepath.Join(b.TempDir(), "key")
	if err := os.WriteFile(f, []byte(sk.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	return f
}

// BenchmarkDedup imports two closures that differ by one path (a data path
// of AGENTIX_BENCH_DEDUP_MB MiB, default 16, whose second generation has a
// few bytes changed in one file) and reports the dedup ratio: stored bytes
// of the two closures' DAGs counted once per block, over their sum counted
// per closure. 0.5 is perfect sharing; 1.0 is none.
func BenchmarkDedup(b *testing.B) {
	n := nixtest.Require(b)
	mb := envInt("AGENTIX_BENCH_DEDUP_MB", 16)
	gen := func(change bool) string {
		dir := filepath.Join(b.TempDir(), "data")
		os.MkdirAll(dir, 0o755)
		r := rand.New(rand.NewSource(7))
		for i := range 8 {
			buf := make([]byte, mb<<20/8)
			r.Read(buf)
			if change && i == 3 {
				copy(buf[len(buf)/2:], "a small edit in generation two")
			}
			os.WriteFile(filepath.Join(dir, fmt.Sprintf("part%d", i)), buf, 0o644)
		}
		return n.AddFixed(dir)
	}
	a, c := gen(false), gen(true)
	ctx := context.Background()
	var ratio float64
	for range b.N {
		st, db := newStore(b)
		ra, err := Import(ctx, st, db, &LocalNix{}, a, ImportOptions{})
		if err != nil {
			b.Fatal(err)
		}
		rc, err := Import(ctx, st, db, &LocalNix{}, c, ImportOptions{})
		if err != nil {
			b.Fatal(err)
		}
		sum, unique := dagBytes(b, st, ra.Closure, rc.Closure)
		ratio = float64(unique) / float64(sum)
	}
	b.ReportMetric(ratio, "dedup-ratio")
}

// dagBytes returns the block bytes of each root's DAG summed per root, and
// the bytes of the union of the DAGs.
func dagBytes(tb testing.TB, st *store.Store, roots ...cid.Cid) (sum, unique int64) {
	seen := map[string]bool{}
	for _, r := range roots {
		err := st.Walk(context.Background(), r, func(blk blocks.Block) error {
			sz := int64(len(blk.RawData()))
			sum += sz
			if !seen[blk.Cid().KeyString()] {
				seen[blk.Cid().KeyString()] = true
				unique += sz
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	return sum, unique
}

// BenchmarkPinFrom800Paths measures what `agentix-store pin add --from PEER
// STORE_PATH` does with the system-shaped closure (see packageClosures):
// store.PinFrom of the closure's DAG from the peer's trustless gateway
// (/ipfs/), then the closure's verification and indexing from the blocks
// now here (IndexStored, as internal/api's pinFrom does), into a fresh
// store; alternately with `nix copy --from` the same
// peer's /nix/ binary cache into a fresh chroot store. ratio is pin-from's
// time over nix copy's.
func BenchmarkPinFrom800Paths(b *testing.B) {
	n := nixtest.Require(b)
	a, _ := packageClosures(b, n)
	p := a[len(a)-1]
	st, db := newStore(b)
	res, err := Import(context.Background(), st, db, &LocalNix{}, p, ImportOptions{})
	if err != nil {
		b.Fatal(err)
	}
	sk, pk, _ := signature.GenerateKeypair("bench-1", nil)
	h, err := NewCacheHandler(st, db, sk, CacheOptions{})
	if err != nil {
		b.Fatal(err)
	}
	gw, err := st.GatewayHandler(nil)
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/nix/", http.StripPrefix("/nix", h))
	mux.Handle("/ipfs/", gw)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ctx := context.Background()
	pinOnce := func(b *testing.B) time.Duration {
		db2, err := kv.Open(b.TempDir(), kv.Options{})
		if err != nil {
			b.Fatal(err)
		}
		st2 := store.New(db2, store.Options{})
		defer func() { st2.Close(); db2.Close() }()
		t0 := time.Now()
		if _, err := st2.PinFrom(ctx, srv.URL, res.Closure, store.FetchOptions{Name: p}); err != nil {
			b.Fatal(err)
		}
		vr, err := IndexStored(ctx, st2, db2, res.Closure)
		if err != nil {
			b.Fatal(err)
		}
		if vr.Paths != len(a) {
			b.Fatalf("pinned closure has %d paths, want %d", vr.Paths, len(a))
		}
		return time.Since(t0)
	}
	copyOnce := func(b *testing.B) time.Duration {
		root := filepath.Join(b.TempDir(), "root")
		t0 := time.Now()
		n.For(b).Run("nix", "copy", "--from", srv.URL+"/nix", "--to", root, "--option", "trusted-public-keys", pk.String(), p)
		return time.Since(t0)
	}
	var pin, cp time.Duration
	for range b.N {
		pin += pinOnce(b)
		cp += copyOnce(b)
	}
	b.ReportMetric(pin.Seconds()/float64(b.N), "pin-from-s")
	b.ReportMetric(cp.Seconds()/float64(b.N), "nix-copy-from-s")
	b.ReportMetric(float64(res.NarBytes)*float64(b.N)/pin.Seconds()/1e6, "pin-from-MB/s")
	b.ReportMetric(pin.Seconds()/cp.Seconds(), "ratio")
}

// BenchmarkCacheHandler800Paths serves, in-process (no HTTP client, no Nix),
// what `nix copy --from` asks our cache for the system-shaped closure: every
// path's narinfo, then every NAR. ns/op is one whole closure; the metrics
// are the time per narinfo and per NAR request.
func BenchmarkCacheHandler800Paths(b *testing.B) {
	n := nixtest.Require(b)
	a, _ := packageClosures(b, n)
	p := a[len(a)-1]
	st, db := newStore(b)
	if _, err := Import(context.Background(), st, db, &LocalNix{}, p, ImportOptions{}); err != nil {
		b.Fatal(err)
	}
	sk, _, _ := signature.GenerateKeypair("bench-1", nil)
	h, err := NewCacheHandler(st, db, sk, CacheOptions{})
	if err != nil {
		b.Fatal(err)
	}
	var paths []PathInfo
	for _, q := range a {
		c, err := LookupHashPart(db, hashPart(q))
		if err != nil {
			b.Fatal(err)
		}
		spi, err := LoadStorePathInfo(context.Background(), st, c)
		if err != nil {
			b.Fatal(err)
		}
		pi, err := spi.PathInfo()
		if err != nil {
			b.Fatal(err)
		}
		paths = append(paths, pi)
	}
	get := func(url string) {
		w := &discardResponse{h: http.Header{}}
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, url, nil))
		if w.status != 0 && w.status != http.StatusOK {
			b.Fatalf("GET %s: %d", url, w.status)
		}
	}
	var ni, nar time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		for _, pi := range paths {
			get("/" + hashPart(pi.Path) + ".narinfo")
		}
		t1 := time.Now()
		for _, pi := range paths {
			get("/nar/" + nixbase32.EncodeToString(pi.NarHash.Digest()) + ".nar")
		}
		ni += t1.Sub(t0)
		nar += time.Since(t1)
	}
	b.ReportMetric(float64(ni.Microseconds())/float64(b.N*len(paths)), "narinfo-µs")
	b.ReportMetric(float64(nar.Microseconds())/float64(b.N*len(paths)), "nar-µs")
}

type discardResponse struct {
	h      http.Header
	status int
}

func (d *discardResponse) Header() http.Header         { return d.h }
func (d *discardResponse) WriteHeader(code int)        { d.status = code }
func (d *discardResponse) Write(p []byte) (int, error) { return len(p), nil }
