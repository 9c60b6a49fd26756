package app

import (
	"slices"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/dryrun"
)

// PreviewRunner builds the dry run of a configuration, as `switchyard
// test` and the console's playground run it: every sink previewed,
// held ones too, nothing opened or sent. close releases what it built.
func PreviewRunner(cfg *config.Config) (r *dryrun.Runner, close func(), err error) {
	plan, err := BuildPreview(cfg)
	if err != nil {
		return nil, nil, err
	}
	r = &dryrun.Runner{Sources: plan.Sources, Rules: plan.Rules}
	for _, s := range plan.Sinks {
		r.Sinks = append(r.Sinks, dryrun.Sink{
			Name: s.Name, Type: sinkConfig(cfg, s.Name).Type, Held: slices.Contains(plan.Held, s.Name), Sink: s.Sink,
		})
	}
	return r, func() { plan.Close() }, nil
}
