package attest

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

func reportPerSecond(b *testing.B, name string) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, name)
	}
}

func BenchmarkSign(b *testing.B) {
	for _, alg := range []string{AlgEd25519, AlgECDSAP256} {
		b.Run(alg, func(b *testing.B) {
			s := testKey(b, alg)
			payload := proposalStatement(b, "bench")
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := SignEnvelope(ctx, PayloadType, payload, s); err != nil {
					b.Fatal(err)
				}
			}
			reportPerSecond(b, "signs/s")
		})
	}
}

// BenchmarkVerify compares raw ed25519.Verify over the envelope's PAE with
// the envelope signature check (VerifySignatures) and the full check
// (VerifyEnvelope: signatures, statement, threshold, schema), all for one
// single-signature ed25519 proposal envelope.
func BenchmarkVerify(b *testing.B) {
	s := testKey(b, AlgEd25519)
	pol := testPolicy(b, []*Signer{s}, nil, 0)
	payload := proposalStatement(b, "bench")
	env := sign(b, PayloadType, payload, s)
	pae := dsse.PAE(PayloadType, payload)
	sig, _ := b64(env.Signatures[0].Sig)
	pub := s.PublicKey().(ed25519.PublicKey)

	b.Run("raw-ed25519", func(b *testing.B) {
		for b.Loop() {
			if !ed25519.Verify(pub, pae, sig) {
				b.Fatal("verify failed")
			}
		}
		reportPerSecond(b, "verifies/s")
	})
	b.Run("signatures", func(b *testing.B) {
		ks := pol.NodeKeySet()
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := VerifySignatures(env, ks, 1); err != nil {
				b.Fatal(err)
			}
		}
		reportPerSecond(b, "verifies/s")
	})
	b.Run("envelope", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := VerifyEnvelope(env, pol); err != nil {
				b.Fatal(err)
			}
		}
		reportPerSecond(b, "verifies/s")
	})
	// interleaved alternates raw ed25519.Verify and VerifyEnvelope in one
	// loop, so that load from other processes hits both alike, and reports
	// VerifyEnvelope's speed as a percentage of raw ed25519.Verify's.
	b.Run("interleaved", func(b *testing.B) {
		var raw, full time.Duration
		for b.Loop() {
			t0 := time.Now()
			if !ed25519.Verify(pub, pae, sig) {
				b.Fatal("verify failed")
			}
			t1 := time.Now()
			if _, err := VerifyEnvelope(env, pol); err != nil {
				b.Fatal(err)
			}
			t2 := time.Now()
			raw += t1.Sub(t0)
			full += t2.Sub(t1)
		}
		b.ReportMetric(100*float64(raw)/float64(full), "%-of-raw-ed25519")
		b.ReportMetric(float64(full-raw)/float64(b.N), "overhead-ns/op")
	})
	b.Run("ecdsa-p256-envelope", func(b *testing.B) {
		e := testKey(b, AlgECDSAP256)
		pol := testPolicy(b, []*Signer{e}, nil, 0)
		env := sign(b, PayloadType, payload, e)
		for b.Loop() {
			if _, err := VerifyEnvelope(env, pol); err != nil {
				b.Fatal(err)
			}
		}
		reportPerSecond(b, "verifies/s")
	})
}

// BenchmarkPublish measures publishing (schema check, block store put, log
// append made durable, index) against a real on-disk badger node, one
// publisher at a time and with concurrent publishers (whose log appends
// share group commits).
func BenchmarkPublish(b *testing.B) {
	s := testKey(b, AlgEd25519)
	mk := func(n int) [][]byte {
		out := make([][]byte, n)
		for i := range out {
			env := sign(b, PayloadType, proposalStatement(b, fmt.Sprintf("patch %d", i)), s)
			out[i], _ = MarshalEnvelope(env)
		}
		return out
	}
	b.Run("serial", func(b *testing.B) {
		n := newTestNode(b)
		envs := mk(b.N)
		ctx := context.Background()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := n.pub.Publish(ctx, envs[i]); err != nil {
				b.Fatal(err)
			}
		}
		reportPerSecond(b, "publishes/s")
	})
	b.Run("parallel", func(b *testing.B) {
		n := newTestNode(b)
		envs := mk(b.N)
		ctx := context.Background()
		var next atomic.Int64
		b.SetParallelism(8)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := n.pub.Publish(ctx, envs[next.Add(1)-1]); err != nil {
					b.Error(err)
					return
				}
			}
		})
		reportPerSecond(b, "publishes/s")
	})
}
