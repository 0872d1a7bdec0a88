// Package agentixtest lays out the sample Agentix workspace
// (testdata/agentix/workspace-basic) for the tests of the packages that read
// workspaces. It is imported by tests only.
//
// A workspace is a directory holding .agentix/audit.jsonl (one JSON object
// per line) and .agentix/proposals/*.patch, as Agentix writes them.
package agentixtest
