# NixOS module: the keystone-checks sweep as a systemd service + timer (same semantics as
# deploy/systemd/keystone-checks-sweep.{service,timer}).
#
#   imports = [ ./deploy/nixos/keystone-checks.nix ];
#   services.keystone-checks = {
#     enable = true;
#     package = pkgs.keystone-checks;          # however you package it (python3Packages.buildPythonApplication)
#     inventory = "/etc/keystone-checks/inventory.py";
#     interval = "*:0/15";                     # systemd OnCalendar
#   };
#
# Runs never overlap: systemd does not start a oneshot that is still activating, and flock(1) also
# excludes manual runs holding the same lock. Reports are written atomically (temp file + rename).
{ config, lib, pkgs, ... }:

let
  cfg = config.services.keystone-checks;
in
{
  options.services.keystone-checks = {
    enable = lib.mkEnableOption "periodic keystone-checks sweeps of the fleet";

    package = lib.mkOption {
      type = lib.types.package;
      description = "Package providing bin/keystone-checks.";
    };

    interval = lib.mkOption {
      type = lib.types.str;
      default = "*:0/15";
      example = "hourly";
      description = "When to sweep (systemd OnCalendar expression).";
    };

    randomizedDelaySec = lib.mkOption {
      type = lib.types.str;
      default = "2min";
      description = "Random delay spreading sweeps of several controllers.";
    };

    inventory = lib.mkOption {
      type = lib.types.path;
      default = "/etc/keystone-checks/inventory.py";
      description = "pyinfra inventory file listing the hosts to sweep.";
    };

    reportDir = lib.mkOption {
      type = lib.types.str;
      default = "/var/lib/keystone-checks";
      description = "Directory for the JSON report (sweep.json).";
    };

    textfileDir = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = "/var/lib/node_exporter/textfile_collector";
      description = "node_exporter textfile collector directory for keystone.prom (null: no Prometheus file).";
    };
  };

  config = lib.mkIf cfg.enable {
    systemd.services.keystone-checks-sweep = {
      description = "keystone-checks health sweep of the Keystone fleet";
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      # The system's own tools (zfs, cryptsetup, nft, nix, systemctl) for the checks of an @local
      # host; found missing by running the Debian unit in the lab (errors: "command not found").
      path = [ cfg.package pkgs.openssh "/run/current-system/sw" ];
      # Root's nix-env would open the store itself and try to remount the read-only /nix/store
      # (ProtectSystem=strict); through the daemon it only reads.
      environment.NIX_REMOTE = "daemon";
      serviceConfig = {
        Type = "oneshot";
        # Findings (1 warning, 2 critical) are results, not unit failures; 3 (unknown: hosts or checks
        # not looked at, a report not written, a crash, Ctrl-C) and signals fail the unit.
        SuccessExitStatus = [ 1 2 ];
        ExecStart = lib.concatStringsSep " " ([
          "${pkgs.util-linux}/bin/flock --nonblock --conflict-exit-code 0 /run/keystone-checks/sweep.lock"
          "${cfg.package}/bin/keystone-checks run sweep -i ${toString cfg.inventory}"
          "--report json:${cfg.reportDir}/sweep.json"
        ] ++ lib.optional (cfg.textfileDir != null) "--report prometheus:${cfg.textfileDir}/keystone.prom");
        RuntimeDirectory = "keystone-checks";
        RuntimeDirectoryPreserve = true;
        StateDirectory = lib.mkIf (cfg.reportDir == "/var/lib/keystone-checks") "keystone-checks";
        TimeoutStartSec = "20min";
        Nice = 10;
        IOSchedulingClass = "idle";
        NoNewPrivileges = true;
        PrivateTmp = true;
        ProtectSystem = "strict";
        ProtectHome = "read-only";
        ReadWritePaths = [ "-${cfg.reportDir}" ] ++ lib.optional (cfg.textfileDir != null) "-${cfg.textfileDir}";
        ProtectKernelTunables = true;
        ProtectControlGroups = true;
        RestrictSUIDSGID = true;
      };
    };

    systemd.timers.keystone-checks-sweep = {
      description = "keystone-checks sweep every 15 minutes";
      wantedBy = [ "timers.target" ];
      timerConfig = {
        OnCalendar = cfg.interval;
        RandomizedDelaySec = cfg.randomizedDelaySec;
        AccuracySec = "30s";
        Persistent = true;
        Unit = "keystone-checks-sweep.service";
      };
    };
  };
}
