package closure

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentix/agentix-store/closure/nixtest"
	"github.com/agentix/agentix-store/store"
)

// TestImportGCRace runs a GC in the instant between a NAR's store.Add
// returning and its registration as in flight, and GCs in a loop during
// imports (local Nix and CAR): every import must complete, stay pinned and
// verify, and no GC may fail.
func TestImportGCRace(t *testing.T) {
	n := nixtest.Require(t)
	top, built := testClosure(n, "common")
	ctx := context.Background()

	t.Run("GC right after Add", func(t *testing.T) {
		st, db := newStore(t)
		var gcs sync.WaitGroup
		var gcErrs atomic.Int32
		var removed atomic.Int64
		testHookAfterAdd = func() {
			gcs.Add(1)
			go func() {
				defer gcs.Done()
				res, err := st.GC(ctx)
				if err != nil {
					gcErrs.Add(1)
					t.Errorf("GC during import: %v", err)
				}
				removed.Add(int64(res.Removed))
			}()
			// Give the GC time to take the lock and mark; without the
			// in-flight protocol it would collect the NAR just added.
			time.Sleep(20 * time.Millisecond)
		}
		defer func() { testHookAfterAdd = nil }()
		res, err := Import(ctx, st, db, &LocalNix{}, top, ImportOptions{Jobs: 2})
		testHookAfterAdd = nil
		gcs.Wait()
		if err != nil {
			t.Fatalf("import with GCs right after each Add: %v", err)
		}
		if res.Paths != len(built) {
			t.Fatalf("imported %d paths, want %d", res.Paths, len(built))
		}
		if removed.Load() != 0 {
			t.Fatalf("GCs during the import removed %d blocks", removed.Load())
		}
		if _, err := st.GC(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := Verify(ctx, st, res.Closure); err != nil {
			t.Fatalf("after GC: %v", err)
		}
	})

	t.Run("GC loop", func(t *testing.T) {
		st, db := newStore(t)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var runs atomic.Int32
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := st.GC(ctx); err != nil {
					t.Errorf("GC: %v", err)
					return
				}
				runs.Add(1)
			}
		}()
		var car bytes.Buffer
		var first *ImportResult
		for i := range 3 {
			res, err := Import(ctx, st, db, &LocalNix{}, top, ImportOptions{})
			if err != nil {
				t.Fatalf("import %d: %v", i, err)
			}
			first = res
		}
		if err := ExportCAR(ctx, st, first.Closure, &car); err != nil {
			t.Fatal(err)
		}
		st2, db2 := newStore(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := st2.GC(ctx); err != nil {
					t.Errorf("GC of the second store: %v", err)
					return
				}
			}
		}()
		for i := range 3 {
			if _, err := ImportCAR(ctx, st2, db2, bytes.NewReader(car.Bytes())); err != nil {
				t.Fatalf("CAR import %d: %v", i, err)
			}
		}
		close(stop)
		wg.Wait()
		if runs.Load() == 0 {
			t.Fatal("no GC ran during the imports")
		}
		for _, s := range []*store.Store{st, st2} {
			if _, err := Verify(ctx, s, first.Closure); err != nil {
				t.Fatal(err)
			}
		}
	})
}
