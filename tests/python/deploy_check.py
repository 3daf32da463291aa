"""Structural checks of the deployment files in deploy/, run by tests/tests/federation/deploy.rs.

    python3 deploy_check.py <what> <deploy dir>     what: compose | kubernetes | dockerfile | systemd

Each check exits 1 with one line per problem, or prints what it checked and exits 0. It needs
no cluster and no container engine: it reads the files as their tools would, and asserts the
kinds and fields a deployment relies on (health checks, non-root, probes, volumes...).
"""

import os
import re
import sys

import yaml

problems = []


def need(condition, message):
    if not condition:
        problems.append(message)
    return condition


HEALTH = ["/usr/local/bin/fedmesh", "health", "--config", "/etc/fedmesh/fedmesh.toml"]


# ---------------------------------------------------------------------------------------------
def check_compose(deploy):
    base = os.path.join(deploy, "compose")
    with open(os.path.join(base, "compose.yaml")) as f:
        compose = yaml.safe_load(f)
    services = compose.get("services", {})
    fedmesh = ["coordinator", "unistra", "rennes2", "ulille"]
    for name in ["pki", *fedmesh, "prometheus", "grafana"]:
        need(name in services, f"compose: service {name} is missing")
    declared = set((compose.get("volumes") or {}).keys())
    host_ports = []
    for name, service in services.items():
        for port in service.get("ports", []):
            host_ports.append(str(port).split(":")[0])
        for volume in service.get("volumes", []):
            if isinstance(volume, str):
                source = volume.split(":")[0]
                if source.startswith("."):
                    need(os.path.exists(os.path.join(base, source)),
                         f"compose: {name} mounts {source}, which does not exist")
                else:
                    need(source in declared, f"compose: {name} uses undeclared volume {source}")
            else:
                need(volume.get("source") in declared,
                     f"compose: {name} uses undeclared volume {volume.get('source')}")
    need(len(host_ports) == len(set(host_ports)), f"compose: a host port is published twice: {host_ports}")
    pki = services.get("pki", {})
    need(pki.get("build", {}).get("target") == "toolbox", "compose: pki must build the toolbox stage")
    need(pki.get("restart") == "no", "compose: pki is a one-shot service (restart: \"no\")")
    for name in fedmesh:
        service = services.get(name, {})
        test = service.get("healthcheck", {}).get("test", [])
        need(test[1:] == HEALTH, f"compose: {name}'s health check must run {' '.join(HEALTH)}")
        need(service.get("read_only") is True, f"compose: {name} must run with a read-only root")
        need(service.get("cap_drop") == ["ALL"], f"compose: {name} must drop every capability")
        need(not service.get("privileged"), f"compose: {name} must not be privileged")
        need(any((v if isinstance(v, str) else v.get("target", "")).endswith(":/var/lib/fedmesh")
                 or (isinstance(v, dict) and v.get("target") == "/var/lib/fedmesh")
                 for v in service.get("volumes", [])),
             f"compose: {name} must keep /var/lib/fedmesh in a volume")
        tls = [v for v in service.get("volumes", []) if isinstance(v, dict) and v.get("target") == "/etc/fedmesh/tls"]
        need(len(tls) == 1 and tls[0].get("read_only") is True
             and tls[0].get("volume", {}).get("subpath") == name,
             f"compose: {name} must mount only its own PKI directory ({name}), read-only")
    coordinator_deps = services.get("coordinator", {}).get("depends_on", {})
    need(coordinator_deps.get("pki", {}).get("condition") == "service_completed_successfully",
         "compose: the coordinator must wait for the PKI")
    for name in fedmesh[1:]:
        service = services.get(name, {})
        need(service.get("depends_on", {}).get("coordinator", {}).get("condition") == "service_healthy",
             f"compose: {name} must wait for a healthy coordinator")
        env = service.get("environment", {})
        need(env.get("FEDMESH_NODE_MEMBER_ID") == name, f"compose: {name}'s FEDMESH_NODE_MEMBER_ID")
        need(env.get("FEDMESH_NODE_ADVERTISE") == f"https://{name}:7443", f"compose: {name}'s FEDMESH_NODE_ADVERTISE")
    with open(os.path.join(base, "prometheus.yml")) as f:
        prometheus = yaml.safe_load(f)
    targets = [t for job in prometheus["scrape_configs"] for c in job["static_configs"] for t in c["targets"]]
    need(sorted(targets) == sorted(["coordinator:9465", "unistra:9464", "rennes2:9464", "ulille:9464"]),
         f"compose: Prometheus scrapes {targets}, not every fedmesh service")
    for provisioning in ["grafana/datasource.yml", "grafana/dashboards.yml"]:
        with open(os.path.join(base, provisioning)) as f:
            need(yaml.safe_load(f).get("apiVersion") == 1, f"compose: {provisioning} is not Grafana provisioning")
    with open(os.path.join(base, "pki-init.sh")) as f:
        script = f.read()
    need("fedmesh certs init" in script and "fedmesh certs issue" in script,
         "compose: pki-init.sh must make the PKI with fedmesh certs")
    return f"compose: {len(services)} services"


# ---------------------------------------------------------------------------------------------
def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def check_statefulset(sts):
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    need(spec.get("replicas") == 1, "kubernetes: one replica (a single writer of its database)")
    need(spec.get("volumeClaimTemplates"), "kubernetes: the StatefulSet needs a volume claim for sled")
    need(pod.get("securityContext", {}).get("runAsNonRoot") is True, "kubernetes: runAsNonRoot")
    need(pod.get("automountServiceAccountToken") is False, "kubernetes: no service account token")
    container = pod["containers"][0]
    # Liveness only asks whether the process answers: a full disk (NOT_SERVING) must take the
    # pod out of readiness, not restart it.
    live = HEALTH[:2] + ["--live"] + HEALTH[2:]
    for probe, expected in [("startupProbe", HEALTH), ("readinessProbe", HEALTH), ("livenessProbe", live)]:
        command = container.get(probe, {}).get("exec", {}).get("command")
        need(command == expected, f"kubernetes: {probe} must run {' '.join(expected)}")
    resources = container.get("resources", {})
    need(resources.get("requests", {}).get("memory") and resources.get("requests", {}).get("cpu"),
         "kubernetes: resource requests (cpu and memory)")
    need(resources.get("limits", {}).get("memory"), "kubernetes: a memory limit")
    security = container.get("securityContext", {})
    need(security.get("readOnlyRootFilesystem") is True, "kubernetes: read-only root filesystem")
    need(security.get("allowPrivilegeEscalation") is False, "kubernetes: no privilege escalation")
    need(security.get("capabilities", {}).get("drop") == ["ALL"], "kubernetes: drop every capability")
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    need(ports.get("grpc") == 7443 and ports.get("metrics") == 9464, f"kubernetes: ports grpc and metrics ({ports})")
    mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
    need(mounts.get("data") == "/var/lib/fedmesh", "kubernetes: the data volume at /var/lib/fedmesh")
    need(mounts.get("tls") == "/etc/fedmesh/tls", "kubernetes: the tls Secret at /etc/fedmesh/tls")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    need(volumes.get("tls", {}).get("secret", {}).get("secretName") == "fedmesh-tls", "kubernetes: tls from Secret fedmesh-tls")
    need(volumes.get("config", {}).get("configMap", {}).get("name") == "fedmesh-config", "kubernetes: config from ConfigMap fedmesh-config")


def check_kubernetes(deploy):
    base = os.path.join(deploy, "kubernetes", "base")
    with open(os.path.join(base, "kustomization.yaml")) as f:
        kustomization = yaml.safe_load(f)
    kinds = {}
    for resource in kustomization["resources"]:
        for doc in load_all(os.path.join(base, resource)):
            need(doc.get("apiVersion") and doc.get("metadata", {}).get("name"),
                 f"kubernetes: {resource} has a document without apiVersion or name")
            kinds.setdefault(doc["kind"], []).append(doc)
    for kind in ["StatefulSet", "Service", "PodDisruptionBudget", "NetworkPolicy", "ServiceAccount"]:
        need(kind in kinds, f"kubernetes: base has no {kind}")
    for sts in kinds.get("StatefulSet", []):
        check_statefulset(sts)
    services = {s["metadata"]["name"]: s for s in kinds.get("Service", [])}
    need(any(p.get("name") == "metrics" for p in services.get("fedmesh", {}).get("spec", {}).get("ports", [])),
         "kubernetes: the fedmesh Service must name a metrics port (ServiceMonitor)")
    need(services.get("fedmesh", {}).get("spec", {}).get("clusterIP") == "None", "kubernetes: a headless governing Service")
    for pdb in kinds.get("PodDisruptionBudget", []):
        need(pdb["spec"].get("selector", {}).get("matchLabels"), "kubernetes: the PDB selects the pods")
    for policy in kinds.get("NetworkPolicy", []):
        need(set(policy["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}, "kubernetes: NetworkPolicy covers ingress and egress")
    overlays = os.path.join(deploy, "kubernetes", "overlays")
    for overlay in ["member", "coordinator"]:
        directory = os.path.join(overlays, overlay)
        with open(os.path.join(directory, "kustomization.yaml")) as f:
            k = yaml.safe_load(f)
        need(k.get("resources") == ["../../base"], f"kubernetes: overlay {overlay} builds on the base")
        configs = [g for g in k.get("configMapGenerator", []) if g["name"] == "fedmesh-config"]
        need(len(configs) == 1, f"kubernetes: overlay {overlay} generates fedmesh-config")
        for entry in configs[0]["files"] if configs else []:
            need(entry.startswith("fedmesh.toml="), f"kubernetes: overlay {overlay}'s config must be fedmesh.toml")
            need(os.path.exists(os.path.join(directory, entry.split("=", 1)[1])), f"kubernetes: overlay {overlay}: {entry} is missing")
        secrets = [g for g in k.get("secretGenerator", []) if g["name"] == "fedmesh-tls"]
        need(len(secrets) == 1 and all(f.startswith("pki/") for f in secrets[0]["files"]),
             f"kubernetes: overlay {overlay} generates fedmesh-tls from pki/")
        with open(os.path.join(directory, ".gitignore")) as f:
            need("pki/" in f.read().split(), f"kubernetes: overlay {overlay} must keep pki/ out of git")
    return f"kubernetes: base {sorted(kinds)}; overlays member, coordinator"


# ---------------------------------------------------------------------------------------------
def dockerfile_instructions(text):
    """(instruction, arguments) pairs, continuation lines joined, comments dropped."""
    out, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        word, _, rest = current.partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    return out


def check_dockerfile(deploy):
    path = os.path.join(deploy, "container", "Dockerfile")
    with open(path) as f:
        instructions = dockerfile_instructions(f.read())
    stages, current = [], None
    args = {}
    for word, rest in instructions:
        if word == "ARG" and current is None:
            name, _, value = rest.partition("=")
            args[name] = value
        if word == "FROM":
            parts = rest.split()
            image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), parts[0])
            need(":" in image and not image.endswith(":latest"), f"dockerfile: base image {image} must be pinned")
            need(len(parts) == 3 and parts[1].upper() == "AS", f"dockerfile: every stage is named ({rest})")
            current = {"name": parts[-1], "image": image, "lines": []}
            stages.append(current)
        elif current is not None:
            current["lines"].append((word, rest))
    names = [s["name"] for s in stages]
    need(len(stages) >= 2, "dockerfile: a multi-stage build")
    need(names[-1] == "runtime", "dockerfile: the last (default) stage is the runtime")
    need("toolbox" in names, "dockerfile: a toolbox stage for one-shot jobs")
    for word, rest in instructions:
        need(word != "ADD", f"dockerfile: COPY, not ADD ({rest})")
        need(word != "MAINTAINER", "dockerfile: MAINTAINER is deprecated (use a LABEL)")
        if word == "COPY" and "--from=" in rest:
            source = re.search(r"--from=(\S+)", rest).group(1)
            need(source in names, f"dockerfile: COPY --from={source} names no stage")
        if word == "RUN":
            need("cargo build" not in rest or "--locked" in rest, "dockerfile: cargo build --locked")
            need("apt-get install" not in rest or "--no-install-recommends" in rest, "dockerfile: apt-get without recommends")
    runtime = stages[-1]
    lines = dict(runtime["lines"])
    user = lines.get("USER", "")
    need(user and user.split(":")[0] not in ("0", "root"), f"dockerfile: the runtime runs as a non-root user ({user!r})")
    need("distroless" in runtime["image"] or "slim" in runtime["image"], "dockerfile: a minimal runtime image")
    health = lines.get("HEALTHCHECK", "")
    need('"health"' in health and health.split("CMD", 1)[-1].strip().startswith("["),
         "dockerfile: HEALTHCHECK runs fedmesh health (exec form)")
    for word in ["ENTRYPOINT", "CMD"]:
        need(lines.get(word, "").startswith("["), f"dockerfile: {word} in exec form (signals reach fedmesh)")
    copies = [rest for word, rest in runtime["lines"] if word == "COPY"]
    need(any("/usr/local/bin/fedmesh" in c for c in copies), "dockerfile: the runtime holds the fedmesh binary")
    with open(path + ".dockerignore") as f:
        ignore = f.read().split()
    need("*" in ignore and "!crates/" in ignore, "dockerfile: the .dockerignore lets in only what the build needs")
    # Everything the release build reads must be in the build context and copied: the
    # workspace's directories, and what non-test code includes at compile time.
    build = stages[0]
    copied = {
        source.rstrip("/")
        for word, rest in build["lines"]
        if word == "COPY" and "--from" not in rest
        for source in rest.split()[:-1]
        if not source.startswith("--")
    }
    # The workspace is the one this script belongs to (the deploy directory may be a copy).
    root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    for needed in sorted(build_inputs(root)):
        need(needed in copied, f"dockerfile: the build stage does not COPY {needed}/, which the build reads")
        need(f"!{needed}/" in ignore or f"!{needed}" in ignore, f"dockerfile: the .dockerignore keeps out {needed}/, which the build reads")
    return f"dockerfile: stages {names}, runtime user {user}"


def build_inputs(root):
    """Top-level paths a release build of the workspace reads: its manifest and lock, every
    workspace member, `proto/`, and what non-test code includes (include_str!/include_bytes!
    before a file's `#[cfg(test)]`)."""
    inputs = {"Cargo.toml", "Cargo.lock", "crates", "proto"}
    with open(os.path.join(root, "Cargo.toml")) as f:
        manifest = f.read()
    members = re.search(r"members\s*=\s*\[(.*?)\]", manifest, re.S).group(1)
    inputs |= {m.split("/")[0] for m in re.findall(r'"([^"]+)"', members)}
    for dirpath, _, files in os.walk(os.path.join(root, "crates")):
        for name in files:
            if not name.endswith(".rs") or f"{os.sep}tests" in dirpath or f"{os.sep}benches" in dirpath:
                continue
            with open(os.path.join(dirpath, name)) as f:
                text = f.read().split("#[cfg(test)]")[0]
            for rel in re.findall(r'include_(?:str|bytes)!\("([^"]+)"\)', text):
                full = os.path.normpath(os.path.join(dirpath, rel))
                inputs.add(os.path.relpath(full, root).split(os.sep)[0])
    return inputs


# ---------------------------------------------------------------------------------------------
def unit_settings(path):
    settings, section = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            key, _, value = line.partition("=")
            settings.setdefault((section, key), []).append(value)
    return settings


def check_systemd(deploy):
    checked = []
    for role in ["node", "coordinator"]:
        unit = f"fedmesh-{role}.service"
        s = unit_settings(os.path.join(deploy, "systemd", unit))
        one = lambda key: (s.get(("Service", key)) or [""])[-1]
        need(one("ExecStart").startswith(f"/usr/local/bin/fedmesh {role} --config /etc/fedmesh/{role}.toml"),
             f"systemd: {unit} starts fedmesh {role}")
        need("-HUP" in one("ExecReload"), f"systemd: {unit} reloads certificates with SIGHUP")
        need(one("User") == "fedmesh" or one("DynamicUser") == "yes", f"systemd: {unit} runs as its own user")
        for key, value in [("ProtectSystem", "strict"), ("NoNewPrivileges", "yes"), ("ProtectHome", "yes"),
                           ("PrivateTmp", "yes"), ("PrivateDevices", "yes"), ("RestrictSUIDSGID", "yes"),
                           ("MemoryDenyWriteExecute", "yes"), ("CapabilityBoundingSet", ""),
                           ("Restart", "on-failure"), ("StateDirectory", f"fedmesh/{role}")]:
            need(one(key) == value and ("Service", key) in s, f"systemd: {unit} needs {key}={value}")
        need(one("ReadWritePaths") == f"/var/lib/fedmesh/{role}", f"systemd: {unit} may write its data directory only")
        need(("Install", "WantedBy") in s, f"systemd: {unit} can be enabled")
        checked.append(unit)
    return f"systemd: {checked}"


if __name__ == "__main__":
    what, deploy = sys.argv[1], sys.argv[2]
    summary = {"compose": check_compose, "kubernetes": check_kubernetes,
               "dockerfile": check_dockerfile, "systemd": check_systemd}[what](deploy)
    if problems:
        print("\n".join(problems))
        sys.exit(1)
    print(summary)
