package wire

import "errors"

// ReportSnapshot is a box's answer to the snapshot command: one fresh,
// clean frame of a camera, for an operator to look at. It is stored with
// the device's reports (same sequence, same outbox) but never opens a case.
const ReportSnapshot = "snapshot"

// Commands that ask a box to do something now.
const (
	CmdReload   = "reload"   // re-read the config file and apply it like a pushed config
	CmdSnapshot = "snapshot" // send a fresh frame of Camera (empty: every camera)
)

// validateSnapshot checks what only snapshot reports need: a snapshot
// image, and none of the fields that would make it a finding.
func (r *Report) validateSnapshot() error {
	switch {
	case r.Phase != PhaseNew:
		return errors.New("phase: a snapshot is always new")
	case r.State != "" || r.FacilityID != "" || r.Zone != "" || r.Sensor != nil || r.Rule != "" || len(r.Box) > 0:
		return errors.New("state/facility_id/zone/sensor/rule/box: a snapshot reports no finding")
	}
	for _, e := range r.Evidence {
		if e.Kind == EvidenceSnapshot {
			return nil
		}
	}
	return errors.New("evidence: a snapshot report needs a snapshot image")
}
