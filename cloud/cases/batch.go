package cases

import (
	"context"

	"github.com/gridwatch/gridwatch/cloud/registry"
	"github.com/gridwatch/gridwatch/cloud/store"
	"github.com/gridwatch/gridwatch/edge/wire"
)

// Item is one report for ApplyBatch: the validated report and its payload.
type Item struct {
	Report wire.Report
	Raw    []byte
}

// Result is what ApplyBatch did with one item: its Outcome, or the error
// that kept it out of the batch (an unknown facility).
type Result struct {
	Outcome
	Err error
}

// ApplyBatch applies many reports in order in one transaction, with the
// effect of calling Apply on each in turn: the same idempotency by (device,
// seq), the same cases and log. Under load it saves a transaction per
// report and most round trips (store.Batch). An item refused before the
// transaction gets its own Err; any other error means nothing was applied,
// and the caller may fall back to Apply item by item to find the culprit.
func (e *Engine) ApplyBatch(ctx context.Context, items []Item) ([]Result, error) {
	now := e.now()
	res := make([]Result, len(items))
	facs := make([]registry.Facility, len(items))
	coverish := make([]bool, len(items))
	var idx []int // the items that go into the transaction
	var reports []store.Report
	for i, it := range items {
		var err error
		if facs[i], coverish[i], err = e.facility(it.Report); err != nil {
			res[i].Err = err
			continue
		}
		idx = append(idx, i)
		reports = append(reports, storedReport(it.Report, it.Raw, now))
	}
	if len(idx) == 0 {
		return res, nil
	}
	err := e.Store.Batch(ctx, func(tx *store.Tx) error {
		inserted, err := tx.InsertReports(ctx, reports)
		if err != nil {
			return err
		}
		var keys []string
		for j, i := range idx {
			if inserted[j] && coverish[i] {
				keys = append(keys, "cover:"+items[i].Report.FacilityID)
			}
		}
		if err := tx.LoadOpenCases(ctx, keys); err != nil {
			return err
		}
		for j, i := range idx {
			out, err := e.applyStored(ctx, tx, items[i].Report, facs[i], coverish[i], inserted[j], now)
			if err != nil {
				return err
			}
			res[i].Outcome = out
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}
