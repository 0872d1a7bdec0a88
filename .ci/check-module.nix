# Evaluates the NixOS module of flake.nix without nixpkgs: a hand-written
# `lib` stub (mkOption, mkEnableOption, types, mkIf, ...) just sufficient to
# collect the module's option declarations and its config, which is then
# evaluated with the options' defaults plus `settings`. Run by
# .ci/check-module.sh:
#
#   nix-instantiate --eval --strict --json .ci/check-module.nix
#
# It checks option names, types and defaults, and what the module derives
# from them (the daemon's settings, ExecStart, the sandbox and memory
# settings). It does NOT check that the systemd unit is valid, that option
# types merge as the real module system merges them, or that the system
# builds: that needs nixpkgs (`nix flake check`, checks.module).
let
  flake = import ../flake.nix;
  outputs = flake.outputs { self = outputs; nixpkgs = { lib.genAttrs = names: f: { }; }; };

  mkType = name: extra: { _type = "type"; inherit name; } // extra;
  types = {
    str = mkType "str" { };
    bool = mkType "bool" { };
    int = mkType "int" { };
    path = mkType "path" { };
    package = mkType "package" { };
    listOf = t: mkType "listOf" { elem = t; };
    nullOr = t: mkType "nullOr" { elem = t; };
    attrsOf = t: mkType "attrsOf" { elem = t; };
    enum = vs: mkType "enum" { values = vs; };
    submodule = m: mkType "submodule" { options = (if builtins.isFunction m then m { } else m).options; };
  };
  lib = {
    inherit types;
    mkOption = o: { _type = "option"; } // o;
    mkEnableOption = d: { _type = "option"; type = types.bool; default = false; description = "Whether to enable ${d}."; };
    mkIf = condition: content: { _type = "if"; inherit condition content; };
    mkMerge = contents: { _type = "merge"; inherit contents; };
    mkDefault = v: v;
    optional = c: v: if c then [ v ] else [ ];
    optionals = c: v: if c then v else [ ];
    optionalAttrs = c: v: if c then v else { };
    optionalString = c: s: if c then s else "";
    escapeShellArg = s: "'" + builtins.replaceStrings [ "'" ] [ "'\\''" ] (toString s) + "'";
    concatStringsSep = builtins.concatStringsSep;
    toInt = builtins.fromJSON;
    last = l: builtins.elemAt l (builtins.length l - 1);
    splitString = sep: s: builtins.filter builtins.isString (builtins.split sep s);
  };
  # pkgs.writeText returns its text between markers, so the settings the
  # module writes can be read back out of ExecStartPre.
  pkgs = {
    system = "x86_64-linux";
    writeText = name: text: "@@" + text + "@@";
    git = "/nix/store/stub-git";
  };

  # The options' defaults, with `set` laid over them.
  defaults = opts: builtins.mapAttrs (n: o: o.default or null) opts;

  eval = set:
    let
      cfg = defaults module.options.services.agentix-store // { package = "/nix/store/stub-agentix-store"; name = "alpha"; } // set;
      config = { services.agentix-store = cfg; networking.hostName = "alpha"; nix.package = "/nix/store/stub-nix"; };
      module = outputs.nixosModules.default { inherit config lib pkgs; };
      c = module.config;
      svc = c.content.systemd.services.agentix-store;
      pre = builtins.elemAt svc.serviceConfig.ExecStartPre 1;
      settings = builtins.fromJSON (builtins.head (builtins.match "[^@]*@@(.*)@@.*" pre));
    in
    { inherit module c svc settings; };

  module = outputs.nixosModules.default {
    config = { services.agentix-store = { }; networking.hostName = "alpha"; };
    inherit lib pkgs;
  };
  opts = module.options.services.agentix-store;

  # [ name, type name, default ] every option must have.
  want = [
    [ "enable" "bool" false ]
    [ "dataDir" "path" "/var/lib/agentix-store" ]
    [ "listen" "str" "127.0.0.1:7171" ]
    [ "openFirewall" "bool" false ]
    [ "witnesses" "listOf" [ ] ]
    [ "peers" "listOf" [ ] ]
    [ "pins" "listOf" [ ] ]
    [ "pinInterval" "str" "hourly" ]
    [ "workspaces" "listOf" [ ] ]
    [ "attestRunningSystem" "bool" true ]
    [ "supplementaryGroups" "listOf" [ ] ]
    [ "memoryMax" "str" "256M" ]
    [ "goMemLimit" "str" "128MiB" ]
  ];
  check = cond: msg: if cond then true else throw "check-module: ${msg}";
  optionChecks = map
    (w:
      let n = builtins.elemAt w 0; o = opts.${n} or null; in
      check (o != null && o._type == "option") "option services.agentix-store.${n} is not declared"
      && check (o.type.name == builtins.elemAt w 1) "option ${n} has type ${o.type.name}, want ${builtins.elemAt w 1}"
      && check (o.default == builtins.elemAt w 2) "option ${n} defaults to ${builtins.toJSON o.default}, want ${builtins.toJSON (builtins.elemAt w 2)}"
      && check (builtins.isString (o.description or null)) "option ${n} has no description")
    want
  ++ [
    (check (opts.name.type.name == "str" && opts.package.type.name == "package") "name/package options")
    (check (builtins.attrNames opts.workspaces.type.elem.options == [ "attr" "host" "path" ]) "workspaces entries have options ${builtins.toJSON (builtins.attrNames opts.workspaces.type.elem.options)}, want attr, host, path")
    (check (opts.workspaces.type.elem.options.host.default == null && opts.workspaces.type.elem.options.attr.default == null) "workspace host and attr default to null")
  ];

  ws = eval { enable = true; workspaces = [{ path = "/home/operator/nixos-config"; host = "alpha"; attr = null; }]; };
  off = eval { enable = true; attestRunningSystem = false; };
  wsOnly = eval { enable = true; attestRunningSystem = false; workspaces = [{ path = "/w"; host = null; attr = null; }]; };
  sc = ws.svc.serviceConfig;
  configChecks = [
    (check (ws.c._type == "if" && ws.c.condition) "config is under mkIf cfg.enable")
    (check (ws.settings.workspaces == [{ path = "/home/operator/nixos-config"; host = "alpha"; }]) "settings.workspaces is ${builtins.toJSON ws.settings.workspaces}")
    (check (ws.settings.runningSystem == "/run/current-system") "settings.runningSystem")
    (check (ws.settings.listen == "127.0.0.1:7171" && ws.settings.witnesses == [ ] && ws.settings.peers == [ ]) "settings listen/witnesses/peers")
    (check (sc.ExecStart == "/nix/store/stub-agentix-store/bin/agentix-store serve") "ExecStart is ${sc.ExecStart}")
    (check (off.svc.serviceConfig.ExecStart == "/nix/store/stub-agentix-store/bin/agentix-store serve --no-running-system") "attestRunningSystem = false: ExecStart is ${off.svc.serviceConfig.ExecStart}")
    (check (wsOnly.svc.serviceConfig.ExecStart == off.svc.serviceConfig.ExecStart && wsOnly.settings.workspaces == [{ path = "/w"; }]) "attestRunningSystem = false still follows the workspaces")
    (check (sc.ProtectHome == "read-only") "ProtectHome is ${toString sc.ProtectHome}, want read-only")
    (check (sc.ReadOnlyPaths == [ "-/home/operator/nixos-config" ]) "ReadOnlyPaths ${builtins.toJSON sc.ReadOnlyPaths}")
    (check (sc.MemoryMax == "256M" && ws.svc.environment.GOMEMLIMIT == "128MiB") "MemoryMax/GOMEMLIMIT")
    (check (ws.svc.environment.NIX_REMOTE == "daemon" && builtins.elem "AF_UNIX" sc.RestrictAddressFamilies) "Nix daemon socket access")
    (check (sc.DynamicUser && sc.ProtectSystem == "strict") "DynamicUser, ProtectSystem=strict")
  ];
in
builtins.deepSeq (optionChecks ++ configChecks) {
  ok = true;
  options = builtins.attrNames opts;
  checked = builtins.length optionChecks + builtins.length configChecks;
}
