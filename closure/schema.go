package closure

import (
	"github.com/ipld/go-ipld-prime"
	"github.com/ipld/go-ipld-prime/schema"
)

func loadSchema(text []byte) (*schema.TypeSystem, error) {
	return ipld.LoadSchemaBytes(text)
}
