package verify_test

import (
	"fmt"
	"os"

	"github.com/agentix/agentix-store/verify"
)

// A report prints a verdict line, the proven claims and each finding.
func ExampleReport() {
	r := verify.NewReport("bundle", "att.bundle.json")
	r.Prove("entry %d is included in the checkpoint's tree", 7)
	r.Done()
	r.WriteText(os.Stdout)
	fmt.Println(r.Err() == nil)
	// Output:
	// bundle att.bundle.json: PROVEN
	//   ok    entry 7 is included in the checkpoint's tree
	// true
}
