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
          # Recompute after go.mod changes: nix build 2>&1 | grep got:
          vendorHash = pkgs.lib.fakeHash;
          subPackages = [ "cmd/agentix-store" "cmd/agentix-verify" ];
          # The test suite needs a writable HOME and real Nix; CI runs it.
          doCheck = false;
          meta = {
            description = "Content-addressed store and transparency log for Agentix-managed NixOS nodes";
            mainProgram = "agentix-store";
          };
        };
        default = agentix-store;
      });

      devShells = forAll (pkgs: {
        default = pkgs.mkShell { packages = [ pkgs.go pkgs.gopls pkgs.nix ]; };
      });

      nixosModules.default = { config, lib, pkgs, ... }:
        let cfg = config.services.agentix-store; in
        {
          options.services.agentix-store = {
            enable = lib.mkEnableOption "the agentix-store node daemon";
            package = lib.mkOption {
              type = lib.types.package;
              default = self.packages.${pkgs.system}.default;
              description = "The agentix-store package.";
            };
            dataDir = lib.mkOption {
              type = lib.types.path;
              default = "/var/lib/agentix-store";
              description = "Data directory (blocks, log, keys, token).";
            };
            listen = lib.mkOption {
              type = lib.types.str;
              default = "127.0.0.1:7171";
              description = "Listen address of the daemon.";
            };
          };
          config = lib.mkIf cfg.enable {
            systemd.services.agentix-store = {
              description = "agentix-store node";
              wantedBy = [ "multi-user.target" ];
              after = [ "network.target" ];
              environment.AGENTIX_STORE_DIR = cfg.dataDir;
              serviceConfig = {
                ExecStart = "${cfg.package}/bin/agentix-store serve --listen ${cfg.listen}";
                DynamicUser = true;
                StateDirectory = "agentix-store";
                StateDirectoryMode = "0700";
                NoNewPrivileges = true;
                ProtectSystem = "strict";
                ProtectHome = true;
                PrivateTmp = true;
                PrivateDevices = true;
                RestrictAddressFamilies = [ "AF_INET" "AF_INET6" "AF_UNIX" ];
                LockPersonality = true;
                MemoryDenyWriteExecute = true;
                Restart = "on-failure";
              };
            };
          };
        };
    };
}
