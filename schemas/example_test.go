package schemas_test

import (
	"errors"
	"fmt"

	"github.com/agentix/agentix-store/schemas"
)

// A predicate is checked against its JSON Schema; a violation names the
// field and matches ErrSchema.
func ExampleValidatePredicate() {
	good := []byte(`{"patch": {"cid": "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
		"sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}}`)
	fmt.Println(schemas.ValidatePredicate(schemas.PredicateApproval, good))

	bad := []byte(`{"patch": {"cid": "not a cid", "sha256": "00"}}`)
	err := schemas.ValidatePredicate(schemas.PredicateApproval, bad)
	fmt.Println(errors.Is(err, schemas.ErrSchema))

	err = schemas.ValidatePredicate("https://agentix.dev/attestation/nope/v1", good)
	fmt.Println(errors.Is(err, schemas.ErrUnknownPredicate))
	// Output:
	// <nil>
	// true
	// true
}
