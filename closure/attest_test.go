package closure

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/agentix/agentix-store/attest"
	"github.com/agentix/agentix-store/closure/nixtest"
)

func TestRunningConfig(t *testing.T) {
	n := nixtest.Require(t)
	ctx := context.Background()
	top, _ := testClosure(n, "common")
	st, db := newStore(t)
	res, err := Import(ctx, st, db, &LocalNix{}, top, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	priv, _, err := attest.GenerateKey("ed25519")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := attest.ParsePrivateKeyPEM(priv)
	if err != nil {
		t.Fatal(err)
	}
	b, err := RunningConfig(ctx, st, res.Closure, RunningConfigOptions{ConfigCommit: "0123456789abcdef0123456789abcdef01234567", Time: time.Unix(1700000000, 0)}, signer)
	if err != nil {
		t.Fatal(err)
	}
	env, err := attest.ParseEnvelope(b)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		t.Fatal(err)
	}
	var stmt attest.Statement
	if err := json.Unmarshal(payload, &stmt); err != nil {
		t.Fatal(err)
	}
	var pred attest.RunningConfigPredicate
	if err := json.Unmarshal(stmt.Predicate, &pred); err != nil {
		t.Fatal(err)
	}
	_, entries, _ := Load(ctx, st, res.Closure)
	var rootHash string
	for _, e := range entries {
		if e.Path == top {
			rootHash = e.NarHashString()
		}
	}
	if stmt.PredicateType != attest.PredicateRunningConfig || pred.Closure.CID != res.Closure.String() ||
		pred.Closure.RootStorePath != top || pred.Closure.NarHash != rootHash || pred.ConfigCommit != "0123456789abcdef0123456789abcdef01234567" ||
		len(stmt.Subject) != 1 || stmt.Subject[0].URI != "ipfs://"+res.Closure.String() {
		t.Fatalf("statement %s", payload)
	}
	if _, _, err := attest.VerifySignatures(env, attest.NewKeySet(signer.Verifier()), 1); err != nil {
		t.Fatalf("envelope does not verify with the node key: %v", err)
	}
	if _, _, err := attest.VerifySignatures(env, attest.NewKeySet(otherVerifier(t)), 1); err == nil {
		t.Fatal("envelope verifies with a foreign key")
	}
}

func otherVerifier(t *testing.T) *attest.Verifier {
	priv, _, err := attest.GenerateKey("ed25519")
	if err != nil {
		t.Fatal(err)
	}
	s, err := attest.ParsePrivateKeyPEM(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s.Verifier()
}
