package store

import (
	"fmt"
	"net/http"

	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/gateway"
	"github.com/prometheus/client_golang/prometheus"
)

// GatewayHandler returns a trustless IPFS gateway over the local blocks only
// (no network retrieval, no DNSLink, no IPNS), to be mounted at /ipfs/.
//
// It is boxo's gateway in trustless mode: `GET /ipfs/<cid>[/path]` answers
// `?format=raw` / `Accept: application/vnd.ipld.raw` with the exact block
// bytes and `?format=car` / `Accept: application/vnd.ipld.car` with a CAR of
// the DAG (dag-scope, entity-bytes and dups per the trustless gateway spec).
// Deserialized responses (plain file bytes) are off: clients verify what they
// fetch. A block missing locally is a 404-class error, never a network fetch.
func (s *Store) GatewayHandler(reg prometheus.Registerer) (http.Handler, error) {
	bsvc := blockservice.New(s.bs, nil)
	backend, err := gateway.NewBlocksBackend(bsvc)
	if err != nil {
		return nil, fmt.Errorf("gateway backend: %w", err)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	return gateway.NewHandler(gateway.Config{
		DeserializedResponses: false,
		NoDNSLink:             true,
		DisableHTMLErrors:     true,
		MetricsRegistry:       reg,
	}, backend), nil
}
