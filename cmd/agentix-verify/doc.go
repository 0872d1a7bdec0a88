// Command agentix-verify is the auditor's tool: it checks what an
// agentix-store node claims, from outside, with nothing but a trust policy.
//
// Exit status: 0 when everything named was proven; 1 when verification
// failed (something was checked and is wrong); 2 for a usage error; 3 when
// something could not be checked (network, missing data).
package main
