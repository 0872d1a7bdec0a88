// Package audit will ingest Agentix JSONL audit logs and proposal patches as
// IPLD records and evaluate the safety boundary over them (rules 1-5 of the
// design). Unknown keys and actions are normal; an unparseable line is kept
// and reported, never dropped.
package audit
