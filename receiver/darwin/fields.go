package darwin

import (
	"slices"
	"strings"
)

// families are Darwin's event families and the data fields its
// documentation (and the events it sends) give them: dotted paths, and
// "x.*" for an object whose members are the account's own (smart
// fields, a function's inputs, an app's metadata).
var families = []struct {
	prefix string
	fields []string
}{
	{"session.", []string{
		"conversationId", "sessionId", "channelId", "channelName", "createdAt",
		"conversationThreadId", "conversationTitle", "closedAt", "lastHumanActivityAt",
		"forwardedAt", "forwardedToId", "forwardedToName", "forwardType",
		"summary", "summarizedAt", "smartFields.*",
		"previousStage", "stage", "transitionedAt", // session.stage.transitioned
	}},
	{"function.", []string{
		"inputs.*", "functionName", "functionId", "functionCallId", "functionStatus",
		"sessionId", "conversationId", "conversationThreadId",
		"app.metadata.*", "app.agentAppId",
	}},
}

// DataFields lists the data fields of the Darwin events an event-type
// pattern (a route's match:) can match, as dotted paths ("x.*" for an
// object with members of any name); nil when it matches none.
func DataFields(pattern string) []string {
	var out []string
	for _, f := range families {
		prefix, wild := strings.CutSuffix(pattern, "*")
		if strings.HasPrefix(pattern, f.prefix) || wild && strings.HasPrefix(f.prefix, prefix) {
			for _, field := range f.fields {
				if !slices.Contains(out, field) {
					out = append(out, field)
				}
			}
		}
	}
	return out
}
