package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/closure"
	"github.com/agentix/agentix-store/closure/nixtest"
	"github.com/ipfs/go-cid"
)

// cliClosures builds two generations of a small system closure with the real
// Nix: lib is shared, data changes, only-a and only-b exist in one generation
// each, and top (the root) references the rest. It returns the store paths by
// name for each generation.
func cliClosures(n *nixtest.Nix) (a, b map[string]string) {
	gen := func(salt, only string) map[string]string {
		drvs := []nixtest.Drv{
			{Name: "lib", Script: "/bin/mkdir -p $out/lib; echo shared > $out/lib/a.txt; /bin/ln -s a.txt $out/lib/link"},
			{Name: "data", Script: "/bin/mkdir -p $out; /usr/bin/seq 1 20000 > $out/numbers; echo " + salt + " >> $out/numbers"},
			{Name: only, Script: "/bin/mkdir -p $out; echo " + only + " > $out/x"},
			{Name: "top", Script: "/bin/mkdir -p $out; echo ${lib} ${data} ${" + only + "} > $out/refs"},
		}
		paths := n.Build(drvs...)
		m := map[string]string{}
		for i, d := range drvs {
			m[d.Name] = paths[i]
		}
		return m
	}
	return gen("generation-a", "only-a"), gen("generation-b", "only-b")
}

type closureImport struct {
	Closure  string `json:"closure"`
	Root     string `json:"root"`
	Paths    int    `json:"paths"`
	NarBytes int64  `json:"narBytes"`
	Reused   int    `json:"reused"`
}

func jsonOK[T any](t *testing.T, dir string, stdin []byte, args ...string) T {
	t.Helper()
	var v T
	out := ok(t, dir, stdin, append([]string{"--json"}, args...)...)
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("agentix-store --json %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return v
}

var cidRE = regexp.MustCompile(`^bafy[a-z2-7]+$`)

// TestClosureCLI drives `agentix-store closure` with the real Nix: import
// (human and --json), verify, ls, diff, export to a CAR and import --car into
// a second node, attest (published: found by attestation search and in the
// log), and import --from a file:// binary cache.
func TestClosureCLI(t *testing.T) {
	n := nixtest.Require(t)
	ga, gb := cliClosures(n)
	dir := initDir(t)

	// import, human output: "<cid>  <root> (4 paths, … NAR bytes, 0 reused)".
	out := string(ok(t, dir, nil, "closure", "import", ga["top"]))
	f := strings.Fields(out)
	if len(f) < 3 || !cidRE.MatchString(f[0]) || f[1] != ga["top"] || !strings.Contains(out, "(4 paths,") {
		t.Fatalf("closure import: unexpected output %q", out)
	}
	cidA := f[0]

	// import --json of the second generation; lib is reused.
	impB := jsonOK[closureImport](t, dir, nil, "closure", "import", gb["top"])
	if !cidRE.MatchString(impB.Closure) || impB.Root != gb["top"] || impB.Paths != 4 || impB.Reused != 1 || impB.NarBytes <= 0 {
		t.Fatalf("closure import --json: %+v", impB)
	}
	cidB := impB.Closure
	// A path inside a store path (and a ./result-like symlink) imports the
	// same closure.
	link := filepath.Join(t.TempDir(), "result")
	if err := os.Symlink(ga["top"], link); err != nil {
		t.Fatal(err)
	}
	if again := jsonOK[closureImport](t, dir, nil, "closure", "import", link); again.Closure != cidA || again.Reused != 4 {
		t.Fatalf("re-import through a symlink: %+v, want closure %s with 4 reused", again, cidA)
	}

	t.Run("verify", func(t *testing.T) {
		out := string(ok(t, dir, nil, "closure", "verify", cidA))
		if !strings.HasPrefix(out, "ok  "+cidA+"  "+ga["top"]+" (4 paths") {
			t.Fatalf("closure verify: %q", out)
		}
		v := jsonOK[closureImport](t, dir, nil, "closure", "verify", cidB)
		if v.Closure != cidB || v.Root != gb["top"] || v.Paths != 4 || v.NarBytes != impB.NarBytes {
			t.Fatalf("closure verify --json: %+v, import said %+v", v, impB)
		}
		for _, args := range [][]string{{"closure", "verify", "nonsense"}, {"closure", "verify"}} {
			if r := run(t, dir, nil, args...); r.code != 2 {
				t.Errorf("%v: exit %d, want 2 (%s)", args, r.code, r.stderr)
			}
		}
		// A CID that is not a stored closure: exit 1 naming it.
		raw := "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
		if r := run(t, dir, nil, "closure", "verify", raw); r.code != 1 || !bytes.Contains(r.stderr, []byte(raw)) {
			t.Errorf("verify of a raw block: exit %d, stderr %q", r.code, r.stderr)
		}
	})

	t.Run("ls", func(t *testing.T) {
		list := jsonOK[[]struct {
			CID   string `json:"cid"`
			Root  string `json:"root"`
			Paths int    `json:"paths"`
		}](t, dir, nil, "closure", "ls")
		// Oldest import first; the re-import through the symlink made A
		// the most recent.
		if len(list) != 2 || list[0].CID != cidB || list[1].CID != cidA || list[1].Root != ga["top"] || list[0].Paths != 4 {
			t.Fatalf("closure ls --json: %+v", list)
		}
		human := string(ok(t, dir, nil, "closure", "ls"))
		if !strings.Contains(human, cidA+"  "+ga["top"]+"  4 paths") || !strings.Contains(human, cidB) {
			t.Fatalf("closure ls: %q", human)
		}
		paths := jsonOK[[]struct {
			Path       string   `json:"path"`
			NarHash    string   `json:"narHash"`
			References []string `json:"references"`
			NAR        string   `json:"nar"`
		}](t, dir, nil, "closure", "ls", cidA)
		var got, want []string
		for _, p := range paths {
			got = append(got, p.Path)
			if !strings.HasPrefix(p.NarHash, "sha256:") || p.NAR == "" {
				t.Errorf("ls entry %+v", p)
			}
		}
		for _, p := range ga {
			want = append(want, p)
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("closure ls CID: paths %v, want %v", got, want)
		}
		// The NAR hashes are Nix's.
		infos, err := closure.ParsePathInfoJSON(n.PathInfoJSON(ga["top"]), "")
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range infos {
			i := slices.Index(got, in.Path)
			if i < 0 || paths[i].NarHash != in.NarHashString() {
				t.Errorf("%s: closure ls gives narHash %+v, nix path-info %s", in.Path, paths, in.NarHashString())
			}
		}
	})

	t.Run("diff", func(t *testing.T) {
		d := jsonOK[struct {
			Added   []string
			Removed []string
			Changed []struct{ Name, From, To string }
		}](t, dir, nil, "closure", "diff", cidA, cidB)
		if !slices.Equal(d.Added, []string{gb["only-b"]}) || !slices.Equal(d.Removed, []string{ga["only-a"]}) {
			t.Fatalf("diff added %v removed %v, want [%s] [%s]", d.Added, d.Removed, gb["only-b"], ga["only-a"])
		}
		if len(d.Changed) != 2 || d.Changed[0].Name != "data" || d.Changed[0].From != ga["data"] || d.Changed[0].To != gb["data"] ||
			d.Changed[1].Name != "top" || d.Changed[1].From != ga["top"] || d.Changed[1].To != gb["top"] {
			t.Fatalf("diff changed %+v", d.Changed)
		}
		human := string(ok(t, dir, nil, "closure", "diff", cidA, cidB))
		for _, line := range []string{"- " + ga["only-a"], "+ " + gb["only-b"], "~ data: " + ga["data"] + " -> " + gb["data"]} {
			if !strings.Contains(human, line+"\n") {
				t.Errorf("closure diff: no line %q in\n%s", line, human)
			}
		}
		if same := string(ok(t, dir, nil, "closure", "diff", cidA, cidA)); same != "" {
			t.Errorf("diff of a closure with itself: %q", same)
		}
	})

	t.Run("export and import --car", func(t *testing.T) {
		car := filepath.Join(t.TempDir(), "a.car")
		ok(t, dir, nil, "closure", "export", "-o", car, cidA)
		stdout := ok(t, dir, nil, "closure", "export", cidA)
		if file, _ := os.ReadFile(car); !bytes.Equal(file, stdout) || len(file) == 0 {
			t.Fatalf("export -o and export to stdout differ (%d vs %d bytes)", len(file), len(stdout))
		}
		other := initDir(t)
		v := jsonOK[closureImport](t, other, nil, "closure", "import", "--car", car)
		if v.Closure != cidA || v.Paths != 4 || v.Root != ga["top"] {
			t.Fatalf("import --car: %+v", v)
		}
		ok(t, other, nil, "closure", "verify", cidA)
		if l := string(ok(t, other, nil, "closure", "ls")); !strings.Contains(l, cidA) {
			t.Fatalf("second node's closure ls lacks %s: %q", cidA, l)
		}
		// From stdin into a third node.
		third := initDir(t)
		if out := string(ok(t, third, stdout, "closure", "import", "--car", "-")); !strings.HasPrefix(out, cidA+"  "+ga["top"]+" (4 paths, verified)") {
			t.Fatalf("import --car -: %q", out)
		}
		// A CAR cut short is refused, and nothing is listed.
		fourth := initDir(t)
		if r := run(t, fourth, stdout[:len(stdout)*2/3], "closure", "import", "--car", "-"); r.code != 1 {
			t.Fatalf("import of a truncated CAR: exit %d (%s)", r.code, r.stderr)
		}
		if l := jsonOK[[]any](t, fourth, nil, "closure", "ls"); len(l) != 0 {
			t.Fatalf("a failed CAR import is listed: %v", l)
		}
		if r := run(t, dir, nil, "closure", "import", "--car", car, ga["top"]); r.code != 2 {
			t.Errorf("import --car with a store path: exit %d, want 2", r.code)
		}
	})

	t.Run("attest", func(t *testing.T) {
		pub := jsonOK[publishResult](t, dir, nil, "closure", "attest", "--commit", strings.Repeat("ab", 20), "--generation", "7", cidA)
		if pub.ID == "" {
			t.Fatalf("closure attest: %+v", pub)
		}
		recs := jsonOK[[]attest.Record](t, dir, nil, "attestation", "search", "--subject", cidA)
		if len(recs) != 1 || recs[0].ID != pub.ID || recs[0].LogIndex != pub.LogIndex || recs[0].PredicateType != attest.PredicateRunningConfig {
			t.Fatalf("attestation search --subject %s: %+v (published %+v)", cidA, recs, pub)
		}
		if byName := jsonOK[[]attest.Record](t, dir, nil, "attestation", "search", "--name", ga["top"]); len(byName) != 1 || byName[0].ID != pub.ID {
			t.Fatalf("attestation search --name %s: %+v", ga["top"], byName)
		}
		// The envelope is in the log at the reported index.
		idx := strconv.FormatUint(pub.LogIndex, 10)
		ents := jsonOK[[]logEntry](t, dir, nil, "log", "entries", "--from", idx, "--to", strconv.FormatUint(pub.LogIndex+1, 10))
		id, err := cid.Decode(pub.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != 1 {
			t.Fatalf("log entries at %d: %+v", pub.LogIndex, ents)
		}
		if c, err := id.Prefix().Sum(ents[0].Entry); err != nil || !c.Equals(id) {
			t.Fatalf("log entry %d is not the attestation %s (%v)", pub.LogIndex, pub.ID, err)
		}
		cp := string(ok(t, dir, nil, "log", "checkpoint"))
		if lines := strings.Split(cp, "\n"); len(lines) < 2 || lines[1] == "0" {
			t.Fatalf("log checkpoint after attest: %q", cp)
		}
		// A closure that is not stored is not attested.
		other := initDir(t)
		if r := run(t, other, nil, "closure", "attest", cidA); r.code != 1 {
			t.Fatalf("attest of a closure this node does not hold: exit %d", r.code)
		}
		if recs := jsonOK[[]attest.Record](t, other, nil, "attestation", "search"); len(recs) != 0 {
			t.Fatalf("a failed closure attest published %+v", recs)
		}
	})

	t.Run("import --from file", func(t *testing.T) {
		n := n.For(t)
		cache := t.TempDir()
		n.Run("nix", "copy", "--to", "file://"+cache+"?compression=xz", ga["top"])
		other := initDir(t)
		v := jsonOK[closureImport](t, other, nil, "closure", "import", "--from", "file://"+cache, ga["top"])
		if v.Paths != 4 || v.Root != ga["top"] || !cidRE.MatchString(v.Closure) {
			t.Fatalf("import --from file://: %+v", v)
		}
		ok(t, other, nil, "closure", "verify", v.Closure)
		// A path the cache does not hold.
		if r := run(t, other, nil, "closure", "import", "--from", "file://"+cache, gb["top"]); r.code != 1 || !bytes.Contains(r.stderr, []byte("not found")) {
			t.Fatalf("import --from of a path not in the cache: exit %d, %q", r.code, r.stderr)
		}
		if r := run(t, other, nil, "closure", "import", "--from", "ftp://x", ga["top"]); r.code != 1 || !bytes.Contains(r.stderr, []byte("ftp")) {
			t.Fatalf("import --from ftp://: exit %d, %q", r.code, r.stderr)
		}
	})
}

// TestClosureDaemonNixCopy imports a closure, starts `agentix-store serve` and
// has the real Nix substitute the closure from the daemon's /nix/ cache into a
// chroot store: with the node's Nix key trusted it arrives and `nix store
// verify` passes there; with another key trusted Nix refuses it. While the
// daemon holds the data dir, closure commands fail with a clear lock error.
func TestClosureDaemonNixCopy(t *testing.T) {
	n := nixtest.Require(t)
	ga, _ := cliClosures(n)
	dir := initDir(t)
	imp := jsonOK[closureImport](t, dir, nil, "closure", "import", ga["top"])
	keys := jsonOK[struct {
		NixKey string `json:"nix_key"`
	}](t, dir, nil, "key", "show")
	if !strings.HasPrefix(keys.NixKey, "test-node-1:") {
		t.Fatalf("key show: nix_key %q", keys.NixKey)
	}
	other := initDir(t)
	otherKey := jsonOK[struct {
		NixKey string `json:"nix_key"`
	}](t, other, nil, "key", "show").NixKey
	// Another node with the same name has another key.
	if otherKey == keys.NixKey {
		t.Fatal("two nodes share a Nix key")
	}

	base := startDaemon(t, dir) + "/nix"
	copyTo := func(key string) (string, error) {
		root := filepath.Join(t.TempDir(), "root")
		_, err := n.Try("nix", "copy", "--from", base, "--to", root,
			"--option", "trusted-public-keys", key,
			"--option", "require-sigs", "true",
			"--option", "narinfo-cache-negative-ttl", "0",
			"--option", "narinfo-cache-positive-ttl", "0",
			ga["top"])
		return root, err
	}
	if _, err := copyTo(otherKey); err == nil {
		t.Fatal("nix copy from the daemon succeeded with an untrusted key")
	}
	root, err := copyTo(keys.NixKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ga {
		if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
			t.Fatalf("%s not copied into %s: %v", p, root, err)
		}
	}
	n.Run("nix", "store", "verify", "--store", root, "--recursive", "--sigs-needed", "1",
		"--option", "trusted-public-keys", keys.NixKey, ga["top"])

	// The closure commands go through the daemon while it runs, with the
	// same answers as without it (imp was imported before it started).
	if v := jsonOK[closureImport](t, dir, nil, "closure", "import", ga["top"]); v.Closure != imp.Closure || v.Paths != imp.Paths {
		t.Errorf("closure import through the daemon: %+v, want %+v", v, imp)
	}
	if v := jsonOK[[]struct{ CID string }](t, dir, nil, "closure", "ls"); len(v) != 1 || v[0].CID != imp.Closure {
		t.Errorf("closure ls through the daemon: %+v", v)
	}
	ok(t, dir, nil, "closure", "verify", imp.Closure)
}
