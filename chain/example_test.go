package chain_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/agentix/agentix-store/chain"
)

// An auditor rebuilds a state: the genesis tree plus an approved patch,
// then hashes it. A patch that does not apply names its file.
func Example() {
	dir, err := os.MkdirTemp("", "chain-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "base.nix"), []byte("{\n  imports = [ ];\n}\n"), 0o644); err != nil {
		panic(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		panic(err)
	}
	defer root.Close()

	patch := []byte(`diff --git a/base.nix b/base.nix
--- a/base.nix
+++ b/base.nix
@@ -1,3 +1,3 @@
 {
-  imports = [ ];
+  imports = [ ./foo.nix ];
 }
diff --git a/foo.nix b/foo.nix
new file mode 100644
--- /dev/null
+++ b/foo.nix
@@ -0,0 +1 @@
+{ }
`)
	if err := chain.ApplyPatch(root, patch); err != nil {
		panic(err)
	}
	h, err := chain.NarHash(dir)
	if err != nil {
		panic(err)
	}
	fmt.Println(h)

	// The same patch again no longer applies: base.nix has changed.
	err = chain.ApplyPatch(root, patch)
	var pe *chain.PatchError
	fmt.Println(errors.Is(err, chain.ErrPatchDoesNotApply), errors.As(err, &pe) && pe.File == "base.nix")
	// Output:
	// sha256-2nzmNfGd2UBErMmNylr6+5XM5F+eaAphjAa7KisZ430=
	// true true
}
