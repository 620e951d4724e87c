package command

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/gridwatch/gridwatch/edge/wire"
)

// Command sends cmd to a box's command topic at QoS 1, not retained: the
// box's persistent session holds it while the box is offline, and a
// retained command would run again at every reconnect. It fills v, at and
// (when empty) id, validates as the box will, and returns what it sent.
func (s *Sender) Command(device string, cmd wire.Command) (wire.Command, error) {
	if err := wire.ValidDeviceID(device); err != nil {
		return cmd, err
	}
	now := time.Now().UTC()
	cmd.V, cmd.At = wire.Version, now
	if cmd.ID == "" {
		cmd.ID = fmt.Sprintf("cmd-%d", now.UnixNano())
	}
	if err := cmd.Validate(); err != nil {
		return cmd, err
	}
	b, _ := json.Marshal(cmd)
	t := s.c.Publish(wire.Topic(device, wire.KindCommand), 1, false, b)
	if !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return cmd, fmt.Errorf("publish %s command to %s: not acknowledged: %v", cmd.Cmd, device, t.Error())
	}
	return cmd, nil
}
