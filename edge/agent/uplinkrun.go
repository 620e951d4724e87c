package agent

import (
	"log/slog"

	"github.com/gridwatch/gridwatch/edge/config"
	"github.com/gridwatch/gridwatch/edge/outbox"
	"github.com/gridwatch/gridwatch/edge/uplink"
	"github.com/gridwatch/gridwatch/edge/wire"
)

// DialUplink opens the MQTT session of cfg's device for the messages in ob.
// Replay commands are served from ob (ServeReplay), and the cloud's
// confirmations free what it has stored (Outbox.Confirm), before every
// command is handed to then, which may be nil. The caller runs
// ob.Run(ctx, mq.Publish) and closes the session. It is the uplink half of
// Run, for tools that feed the same outbox without cameras.
func DialUplink(cfg *config.Config, ob *outbox.Outbox, then func(wire.Command), log *slog.Logger) (*uplink.MQTT, error) {
	return dialUplink(cfg, ob, then, nil, log)
}

// dialUplink is DialUplink that also takes pushed configs.
func dialUplink(cfg *config.Config, ob *outbox.Outbox, then func(wire.Command), onConfig func(wire.ConfigPush), log *slog.Logger) (*uplink.MQTT, error) {
	tlsCfg, err := cfg.Broker.TLS.ClientConfig()
	if err != nil {
		return nil, err
	}
	return uplink.Dial(uplink.MQTTOptions{
		BrokerURL: cfg.Broker.URL, ClientID: cfg.Broker.ClientID, Device: cfg.Device, TLS: tlsCfg,
		Username: cfg.Broker.Username, PasswordFile: cfg.Broker.PasswordFile,
		Software: Software, ConfigVer: cfg.Version, OnConfig: onConfig,
		OnCommand: func(cmd wire.Command) {
			switch cmd.Cmd {
			case wire.CmdReplay:
				ServeReplay(ob, cmd.FromSeq, log)
			case wire.CmdConfirm:
				if _, err := ob.Confirm(cmd.UpTo); err != nil {
					log.Error("forget confirmed messages", "up_to", cmd.UpTo, "err", err)
				}
			}
			if then != nil {
				then(cmd)
			}
		},
	}, log.With("component", "mqtt"))
}

// ServeReplay answers the cloud's replay command: every kept message from
// seq from on is queued again, and a request reaching below what the outbox
// still keeps is logged, since the difference is lost.
func ServeReplay(ob *outbox.Outbox, from uint64, log *slog.Logger) {
	n, oldest, err := ob.Replay(from)
	if err != nil {
		log.Error("replay failed", "from_seq", from, "err", err)
		return
	}
	if oldest > from {
		log.Warn("replay asked for messages no longer kept", "from_seq", from, "oldest_kept", oldest)
	}
	log.Info("replaying", "from_seq", from, "messages", n)
}
