package store

// SetSpoolMemMax lowers ImportCAR's in-memory spool limit so tests reach the
// temporary-file path with small CARs. It returns a function restoring it.
func SetSpoolMemMax(n int) (restore func()) {
	old := spoolMemMax
	spoolMemMax = n
	return func() { spoolMemMax = old }
}
