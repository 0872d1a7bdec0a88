{
  description = "agentix-store: content-addressed store and transparency log for Agentix-managed NixOS nodes";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAll (pkgs: rec {
        agentix-store = pkgs.buildGoModule {
          pname = "agentix-store";
          version = "0.1.0";
          src = self;
          # NAR hash of `go mod vendor` (computed with `nix hash path`); recompute
          # after go.mod changes, or with
          # `nix build .#agentix-store 2>&1 | grep got:`.
          vendorHash = "sha256-z0mhJVTOs6ZInZ0PY0uOCFTvsAO2QC9FZ1X8laPk/Zs=";
          subPackages = [ "cmd/agentix-store" "cmd/agentix-verify" ];
          # The test suite needs real Nix, Kubo and loopback daemons; CI
          # (.ci/run) runs it.
          doCheck = false;
          meta = {
            description = "Content-addressed store and transparency log for Agentix-managed NixOS nodes";
            mainProgram = "agentix-store";
          };
        };
        default = agentix-store;
      });

      devShells = forAll (pkgs: {
        default = pkgs.mkShell { packages = [ pkgs.go pkgs.gopls pkgs.nix pkgs.kubo ]; };
      });

      checks = forAll (pkgs: {
        package = self.packages.${pkgs.system}.default;
        # The module evaluates with witnesses, peers, pins and a workspace
        # configured (the systemd unit itself is only checked here, with
        # nixpkgs; .ci/check-module.sh checks options and the service
        # settings without it).
        module = (nixpkgs.lib.nixosSystem {
          system = pkgs.system;
          modules = [
            self.nixosModules.default
            {
              boot.loader.grub.enable = false;
              fileSystems."/".device = "/dev/null";
              system.stateVersion = "25.05";
              services.agentix-store = {
                enable = true;
                witnesses = [{ url = "http://peer-b:7171/log"; key = "node-b-witness+00000000+BAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"; }];
                peers = [{ key = "agentix-store/node-b+00000000+AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"; }];
                pins = [{ from = "http://peer-b:7171"; target = "/nix/store/00000000000000000000000000000000-system"; }];
                workspaces = [{ path = "/home/operator/nixos-config"; host = "alpha"; }];
              };
            }
          ];
        }).config.system.build.toplevel;
      });

      nixosModules.default = { config, lib, pkgs, ... }:
        let
          cfg = config.services.agentix-store;
          bin = "${cfg.package}/bin/agentix-store";
          settings = pkgs.writeText "agentix-store-settings.json" (builtins.toJSON {
            listen = cfg.listen;
            witnesses = cfg.witnesses;
            peers = map (p: { inherit (p) key; } // lib.optionalAttrs (p.origin != null) { inherit (p) origin; }) cfg.peers;
            # The daemon follows these (ingests each as Agentix appends) and
            # attests the running system (runningSystem) when it changes.
            workspaces = map (w: { path = toString w.path; }
              // lib.optionalAttrs (w.host != null) { inherit (w) host; }
              // lib.optionalAttrs (w.attr != null) { inherit (w) attr; }) cfg.workspaces;
            runningSystem = "/run/current-system";
          });
        in
        {
          options.services.agentix-store = {
            enable = lib.mkEnableOption "the agentix-store node daemon";
            package = lib.mkOption {
              type = lib.types.package;
              default = self.packages.${pkgs.system}.default;
              description = "The agentix-store package.";
            };
            name = lib.mkOption {
              type = lib.types.str;
              default = config.networking.hostName;
              description = "Node name: the log origin and key names derive from it (used at first start only).";
            };
            dataDir = lib.mkOption {
              type = lib.types.path;
              default = "/var/lib/agentix-store";
              description = "Data directory: blocks, log, keys (created once, never overwritten), token, trust-policy.json.";
            };
            listen = lib.mkOption {
              type = lib.types.str;
              default = "127.0.0.1:7171";
              description = "Listen address. Reads are public; writes need the token in dataDir/token.";
            };
            openFirewall = lib.mkOption {
              type = lib.types.bool;
              default = false;
              description = "Open the listen port in the firewall (for peers that witness, pin and substitute).";
            };
            witnesses = lib.mkOption {
              type = lib.types.listOf (lib.types.submodule {
                options.url = lib.mkOption { type = lib.types.str; description = "The witness's tlog-witness prefix, e.g. http://peer:7171/log."; };
                options.key = lib.mkOption { type = lib.types.str; description = "Its cosignature/v1 verifier key (`agentix-store key show` on it: witness key)."; };
              });
              default = [ ];
              description = "Witnesses asked to cosign each new checkpoint of this node's log.";
            };
            peers = lib.mkOption {
              type = lib.types.listOf (lib.types.submodule {
                options.key = lib.mkOption { type = lib.types.str; description = "The peer log's note verifier key (its `key show` log key)."; };
                options.origin = lib.mkOption { type = lib.types.nullOr lib.types.str; default = null; description = "The peer log's origin (default: the key's name)."; };
              });
              default = [ ];
              description = "Peer logs this node witnesses (cosigns at POST /log/add-checkpoint).";
            };
            pins = lib.mkOption {
              type = lib.types.listOf (lib.types.submodule {
                options.from = lib.mkOption { type = lib.types.str; description = "Peer node URL."; };
                options.target = lib.mkOption { type = lib.types.str; description = "A CID, or a store path whose closure the peer holds."; };
              });
              default = [ ];
              description = "DAGs and closures to pull from peers and pin (resumable; verified block by block; closures are served under /nix/).";
            };
            pinInterval = lib.mkOption {
              type = lib.types.str;
              default = "hourly";
              description = "systemd calendar expression for re-syncing pins.";
            };
            workspaces = lib.mkOption {
              type = lib.types.listOf (lib.types.submodule {
                options.path = lib.mkOption { type = lib.types.str; description = "The Agentix workspace (absolute path; the nixos-config flake whose .agentix/audit.jsonl the daemon ingests). Read-only to the daemon; it must be readable by the service's dynamic user (world-readable, or through supplementaryGroups)."; };
                options.host = lib.mkOption { type = lib.types.nullOr lib.types.str; default = null; description = "Its nixosConfigurations entry (default: the node name)."; };
                options.attr = lib.mkOption { type = lib.types.nullOr lib.types.str; default = null; description = "The toplevel flake attribute (default: nixosConfigurations.<host>.config.system.build.toplevel)."; };
              });
              default = [ ];
              description = "Agentix workspaces the daemon follows: each is ingested as Agentix appends to its audit log, and the running system is attested with the configuration chain of the one whose host is this node.";
            };
            attestRunningSystem = lib.mkOption {
              type = lib.types.bool;
              default = true;
              description = "Attest the running system (/run/current-system) each time it changes, so after `nixos-rebuild switch` the node attests the new system with nobody running a command. false runs the daemon with --no-running-system: it still follows the workspaces, but neither imports nor attests the running system.";
            };
            supplementaryGroups = lib.mkOption {
              type = lib.types.listOf lib.types.str;
              default = [ ];
              description = "Extra groups of the service's dynamic user, e.g. one that may read the workspaces.";
            };
            memoryMax = lib.mkOption {
              type = lib.types.str;
              default = "256M";
              description = "systemd MemoryMax of the daemon (hard ceiling).";
            };
            goMemLimit = lib.mkOption {
              type = lib.types.str;
              default = "128MiB";
              description = "GOMEMLIMIT of the daemon: the Go runtime's soft memory limit, below memoryMax (badger's mapped files take the rest).";
            };
          };

          config = lib.mkIf cfg.enable {
            networking.firewall.allowedTCPPorts = lib.mkIf cfg.openFirewall [
              (lib.toInt (lib.last (lib.splitString ":" cfg.listen)))
            ];
            systemd.services.agentix-store = {
              description = "agentix-store node";
              wantedBy = [ "multi-user.target" ];
              after = [ "network-online.target" ];
              wants = [ "network-online.target" ];
              # The follower imports closures from the local Nix (through
              # the daemon socket) and evaluates workspace flakes (git).
              path = [ config.nix.package pkgs.git ];
              environment = {
                AGENTIX_STORE_DIR = cfg.dataDir;
                GOMEMLIMIT = cfg.goMemLimit;
                NIX_REMOTE = "daemon";
                XDG_CACHE_HOME = "/var/cache/agentix-store";
              };
              serviceConfig = {
                ExecStartPre = [
                  "${bin} init --name ${lib.escapeShellArg cfg.name}"
                  "${bin} config apply ${settings}"
                ];
                ExecStart = "${bin} serve" + lib.optionalString (!cfg.attestRunningSystem) " --no-running-system";
                MemoryMax = cfg.memoryMax;
                SupplementaryGroups = cfg.supplementaryGroups;
                CacheDirectory = "agentix-store";
                # Workspaces are read, never written; /home is visible
                # read-only. The Nix daemon socket is reached over AF_UNIX
                # (connecting needs no write access to the file system).
                ReadOnlyPaths = map (w: "-${toString w.path}") cfg.workspaces;
                DynamicUser = true;
                StateDirectory = "agentix-store";
                StateDirectoryMode = "0700";
                UMask = "0077";
                NoNewPrivileges = true;
                ProtectSystem = "strict";
                ProtectHome = "read-only";
                PrivateTmp = true;
                PrivateDevices = true;
                ProtectKernelTunables = true;
                ProtectKernelModules = true;
                ProtectControlGroups = true;
                RestrictAddressFamilies = [ "AF_INET" "AF_INET6" "AF_UNIX" ];
                RestrictNamespaces = true;
                LockPersonality = true;
                MemoryDenyWriteExecute = true;
                SystemCallArchitectures = "native";
                CapabilityBoundingSet = "";
                Restart = "on-failure";
                TimeoutStopSec = 40;
              };
            };
            systemd.services.agentix-store-pins = lib.mkIf (cfg.pins != [ ]) {
              description = "agentix-store: pull and pin peers' closures";
              after = [ "agentix-store.service" ];
              requires = [ "agentix-store.service" ];
              environment.AGENTIX_STORE_DIR = cfg.dataDir;
              serviceConfig = {
                Type = "oneshot";
                MemoryMax = cfg.memoryMax;
                DynamicUser = true;
                StateDirectory = "agentix-store";
                ExecStart = map (p: "${bin} pin add --from ${lib.escapeShellArg p.from} ${lib.escapeShellArg p.target}") cfg.pins;
              };
            };
            systemd.timers.agentix-store-pins = lib.mkIf (cfg.pins != [ ]) {
              wantedBy = [ "timers.target" ];
              timerConfig = { OnCalendar = cfg.pinInterval; Persistent = true; };
            };
          };
        };
    };
}
