package main

import (
	"context"
	"log/slog"

	"github.com/gofiber/fiber/v2"

	"github.com/gridwatch/gridwatch/cloud/imagery"
	"github.com/gridwatch/gridwatch/cloud/web"
)

// imageryAPI adapts imagery.Runner to the web package's ImageryJobs.
type imageryAPI struct {
	ctx    context.Context
	runner *imagery.Runner
}

var _ web.ImageryJobs = (*imageryAPI)(nil)

// imageryJobs wires API-started comparison jobs (under dir) to the case
// engine and the evidence store, and resumes the jobs an earlier run of the
// cloud left queued or running.
func imageryJobs(ctx context.Context, dir string, in imagery.Intake, ev imagery.EvidencePutter, log *slog.Logger) (*imageryAPI, error) {
	a := &imageryAPI{ctx: ctx, runner: &imagery.Runner{Dir: dir, Intake: in, Evidence: ev, Log: log}}
	ids, err := a.runner.Resume(ctx)
	if err != nil {
		return nil, err
	}
	if len(ids) > 0 {
		log.Info("imagery jobs resumed", "jobs", ids)
	}
	return a, nil
}

func (a *imageryAPI) Start(_ *fiber.Ctx, r web.ImageryJobRequest) (any, error) {
	if r.MinAreaM2 == 0 {
		r.MinAreaM2 = 20 // as imagery compare's --min-area-m2
	}
	return a.runner.Start(a.ctx, imagery.JobSpec{Before: r.Before, After: r.After, Area: r.Area, Zoom: r.Zoom,
		Scheme: r.Scheme, CRS: r.CRS, MinAreaM2: r.MinAreaM2, Category: r.Category},
		imagery.FileOptions{MinScore: r.FileMinScore, MinAreaM2: r.FileMinAreaM2})
}

func (a *imageryAPI) Status(id string) (any, bool)         { return a.runner.Status(id) }
func (a *imageryAPI) List() any                            { return a.runner.List() }
func (a *imageryAPI) GeoJSONPath(id string) (string, bool) { return a.runner.GeoJSONPath(id) }
