"""What a schema cannot see: the rules jobrelay's manifests promise (k8s/README.md, issue 8).

Each check takes the whole rendered overlay, because most rules relate two resources: a Dapr
annotation to the Configuration it names, a Component's `envRef` to the sidecar environment
that must supply it, an autoscaler to the Deployment it scales.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from scripts.k8s.schemas import Resource, describe

DAPR_REQUIRED = (
    "dapr.io/app-id",
    "dapr.io/app-port",
    "dapr.io/config",
    "dapr.io/api-token-secret",
    "dapr.io/app-token-secret",
    "dapr.io/sidecar-cpu-request",
    "dapr.io/sidecar-cpu-limit",
    "dapr.io/sidecar-memory-request",
    "dapr.io/sidecar-memory-limit",
)
# The injector (Dapr 1.18, pkg/injector/patcher/sidecar_container.go) puts each token Secret
# into daprd's environment only; the app container must be given the same Secret itself.
TOKEN_ENV = {
    "dapr.io/api-token-secret": "DAPR_API_TOKEN",
    "dapr.io/app-token-secret": "APP_API_TOKEN",
}
# What overlays write where a kustomize replacement fills in the value.
PLACEHOLDER = "from-replacements"
# Apps reachable from outside the cluster; every other pod must be closed to ingress.
PUBLIC_APPS = {"intake", "status"}
# The state store metadata daprd encrypts values with (Dapr 1.18, pkg/encryption).
ENCRYPTION_KEYS = ("primaryEncryptionKey", "secondaryEncryptionKey")
# The secret store Dapr's operator resolves for a component that names none, or this one.
BUILTIN_STORE = "kubernetes"
KUBERNETES_STORE_TYPE = "secretstores.kubernetes"
# Where client-go's in-cluster config (so daprd's Kubernetes secret store) reads its token.
API_CREDENTIALS_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# Pod annotations that name a Secret for the injector to read.
SECRET_ANNOTATIONS = ("dapr.io/api-token-secret", "dapr.io/app-token-secret")


def _of_kind(resources: list[Resource], kind: str) -> list[Resource]:
    return [r for r in resources if r.get("kind") == kind]


def _pod(deployment: Resource) -> dict[str, Any]:
    template: dict[str, Any] = deployment["spec"]["template"]
    return template


def _annotations(deployment: Resource) -> dict[str, str]:
    annotations: dict[str, str] = _pod(deployment).get("metadata", {}).get("annotations", {})
    return annotations


def _dapr_apps(resources: list[Resource]) -> list[Resource]:
    return [
        d
        for d in _of_kind(resources, "Deployment")
        if _annotations(d).get("dapr.io/enabled") == "true"
    ]


def _container_problems(container: dict[str, Any]) -> Iterator[str]:
    for probe in ("readinessProbe", "livenessProbe"):
        if probe not in container:
            yield f"no {probe}"
    for bound in ("requests", "limits"):
        for name in ("cpu", "memory"):
            if name not in container.get("resources", {}).get(bound, {}):
                yield f"no {bound}.{name}"
    context = container.get("securityContext", {})
    if context.get("readOnlyRootFilesystem") is not True:
        yield "root filesystem is writable"
    if context.get("allowPrivilegeEscalation") is not False:
        yield "allowPrivilegeEscalation is not false"


def containers_are_hardened(resources: list[Resource]) -> Iterator[str]:
    """Probes, requests and limits, non-root and read-only root for every container."""
    for deployment in _of_kind(resources, "Deployment"):
        spec = _pod(deployment)["spec"]
        if spec.get("securityContext", {}).get("runAsNonRoot") is not True:
            yield f"{describe(deployment)}: pod securityContext.runAsNonRoot is not true"
        for container in spec["containers"]:
            for problem in _container_problems(container):
                yield f"{describe(deployment)} container {container['name']}: {problem}"


def dapr_annotations_are_complete(resources: list[Resource]) -> Iterator[str]:
    """The sidecar settings every Dapr app needs, pointing at things that exist."""
    configurations = {c["metadata"]["name"] for c in _of_kind(resources, "Configuration")}
    for deployment in _dapr_apps(resources):
        annotations = _annotations(deployment)
        for key in DAPR_REQUIRED:
            if key not in annotations:
                yield f"{describe(deployment)}: no {key} annotation"
        config = annotations.get("dapr.io/config")
        if config is not None and config not in configurations:
            yield f"{describe(deployment)}: dapr.io/config names no Configuration ({config})"
        ports = {
            str(port["containerPort"])
            for container in _pod(deployment)["spec"]["containers"]
            for port in container.get("ports", [])
        }
        if annotations.get("dapr.io/app-port") not in ports:
            yield f"{describe(deployment)}: dapr.io/app-port is no container port"


def _secret_env(container: dict[str, Any]) -> dict[str, str]:
    """Env name -> the Secret it is read from, for env read from a Secret's `token` key."""
    found: dict[str, str] = {}
    for env in container.get("env", []):
        ref = env.get("valueFrom", {}).get("secretKeyRef", {})
        if ref.get("key") == "token":
            found[env["name"]] = ref.get("name", "")
    return found


def apps_share_their_sidecars_tokens(resources: list[Resource]) -> Iterator[str]:
    """Each Dapr app's container reads the token Secrets its sidecar is given.

    Without DAPR_API_TOKEN every SDK call is refused by daprd; without APP_API_TOKEN the app
    refuses every delivery from daprd. Neither shows until the pod runs.
    """
    for deployment in _dapr_apps(resources):
        annotations = _annotations(deployment)
        app = annotations.get("dapr.io/app-id")
        containers = [c for c in _pod(deployment)["spec"]["containers"] if c["name"] == app]
        if not containers:
            yield f"{describe(deployment)}: no container named after app-id {app}"
            continue
        given = _secret_env(containers[0])
        for annotation, env in TOKEN_ENV.items():
            secret = annotations.get(annotation)
            if secret is not None and given.get(env) != secret:
                yield (
                    f"{describe(deployment)} container {app}: {env} is not read from Secret "
                    f"{secret} ({annotation})"
                )


def _sidecar_env(annotations: dict[str, str]) -> set[str]:
    names: set[str] = set()
    for key in ("dapr.io/env", "dapr.io/env-from-secret"):
        for pair in annotations.get(key, "").split(","):
            name, _, _ = pair.strip().partition("=")
            if name:
                names.add(name)
    return names


def env_refs_reach_the_sidecars(resources: list[Resource]) -> Iterator[str]:
    """Every `envRef` a component reads is in the environment of each sidecar that loads it.

    daprd in Kubernetes resolves envRef only for names the injector put in its environment
    (the `dapr.io/env` annotations), so a missing one would start the component with an empty
    value, not fail the deployment.
    """
    components = _of_kind(resources, "Component")
    for deployment in _dapr_apps(resources):
        annotations = _annotations(deployment)
        app_id = annotations.get("dapr.io/app-id")
        supplied = _sidecar_env(annotations)
        for component in components:
            scopes = component.get("scopes")
            if scopes and app_id not in scopes:
                continue
            for item in component["spec"].get("metadata", []):
                ref = item.get("envRef")
                if ref and ref not in supplied:
                    yield (
                        f"{describe(deployment)}: {describe(component)} reads envRef {ref}, "
                        "which its dapr.io/env annotation does not set"
                    )


def component_scopes_name_apps(resources: list[Resource]) -> Iterator[str]:
    """Components are scoped, and only to app-ids that exist (a typo would hide them)."""
    app_ids = {_annotations(d).get("dapr.io/app-id") for d in _dapr_apps(resources)}
    for resource in resources:
        if resource.get("kind") not in {"Component", "Resiliency"}:
            continue
        scopes = resource.get("scopes")
        if not scopes:
            yield f"{describe(resource)}: no scopes, so every sidecar in the namespace loads it"
            continue
        for scope in scopes:
            if scope not in app_ids:
                yield f"{describe(resource)}: scope {scope} is no app-id of this overlay"


def autoscalers_target_deployments(resources: list[Resource]) -> Iterator[str]:
    """The worker scales on backlog (KEDA), intake and status on CPU (HPA)."""
    deployments = {d["metadata"]["name"] for d in _of_kind(resources, "Deployment")}
    targets: dict[str, str] = {}
    for kind in ("ScaledObject", "HorizontalPodAutoscaler"):
        for scaler in _of_kind(resources, kind):
            name = scaler["spec"]["scaleTargetRef"]["name"]
            if name not in deployments:
                yield f"{describe(scaler)}: scales {name}, which is no Deployment here"
            targets[name] = kind
    wanted = {"worker": "ScaledObject", "intake": "HorizontalPodAutoscaler"}
    wanted["status"] = "HorizontalPodAutoscaler"
    for name, kind in wanted.items():
        if targets.get(name) != kind:
            yield f"Deployment/{name}: not scaled by a {kind}"


def only_public_apps_take_ingress(resources: list[Resource]) -> Iterator[str]:
    """A default-deny ingress policy, and no policy opening a non-public app to all."""
    policies = _of_kind(resources, "NetworkPolicy")
    if not any(
        p["spec"].get("podSelector") == {} and not p["spec"].get("ingress") for p in policies
    ):
        yield "no default-deny ingress NetworkPolicy"
    for policy in policies:
        selected = policy["spec"].get("podSelector", {}).get("matchLabels", {})
        app = selected.get("app.kubernetes.io/name")
        for rule in policy["spec"].get("ingress", []):
            if "from" not in rule and app not in PUBLIC_APPS:
                yield f"{describe(policy)}: admits any source to {app or 'every pod'}"


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def placeholders_are_replaced(resources: list[Resource]) -> Iterator[str]:
    """No `from-replacements` left: a replacement whose target moved would ship it as is."""
    for resource in resources:
        if any(PLACEHOLDER in text for text in _strings(resource)):
            yield f"{describe(resource)}: still holds the placeholder {PLACEHOLDER}"


def secret_stores_exist(resources: list[Resource]) -> Iterator[str]:
    """A Component's `auth.secretStore` names a secret store of this overlay.

    daprd would otherwise fail to resolve the component's secretKeyRefs and skip it (or, for
    a store an overlay deleted, start without the credentials it expected).
    """
    stores = {
        c["metadata"]["name"]
        for c in _of_kind(resources, "Component")
        if str(c["spec"].get("type", "")).startswith("secretstores.")
    }
    for component in _of_kind(resources, "Component"):
        store = component.get("auth", {}).get("secretStore")
        # Unset or `kubernetes`: the store every sidecar in Kubernetes has built in.
        if store not in (None, "kubernetes") and store not in stores:
            yield f"{describe(component)}: auth.secretStore {store} is no secret store here"


def _secret_stores(resources: list[Resource]) -> dict[str, Resource]:
    return {
        c["metadata"]["name"]: c
        for c in _of_kind(resources, "Component")
        if str(c["spec"].get("type", "")).startswith("secretstores.")
    }


def _loaded_by(resource: Resource, app_ids: set[str]) -> set[str]:
    """The app-ids whose sidecars load a Component: its scopes, or every app without any."""
    scopes = resource.get("scopes")
    return set(scopes) & app_ids if scopes else set(app_ids)


def _app_ids(resources: list[Resource]) -> dict[str, Resource]:
    return {str(_annotations(d).get("dapr.io/app-id")): d for d in _dapr_apps(resources)}


def encrypted_stores_get_their_keys(resources: list[Resource]) -> Iterator[str]:
    """Every sidecar that loads an encrypted state store also loads the store of its key.

    daprd 1.18 (pkg/runtime/processor/state) looks the state store's `auth.secretStore` up
    among the stores its own sidecar loaded; finding none, it starts the state store without
    encryption and logs nothing, so that app would write plaintext beside the others'
    ciphertext. Likewise with a secondary key but no primary one.
    """
    stores = _secret_stores(resources)
    app_ids = set(_app_ids(resources))
    for component in _of_kind(resources, "Component"):
        if not str(component["spec"].get("type", "")).startswith("state."):
            continue
        keys = {i.get("name") for i in component["spec"].get("metadata", [])} & set(ENCRYPTION_KEYS)
        if not keys:
            continue
        if ENCRYPTION_KEYS[0] not in keys:
            yield f"{describe(component)}: a {ENCRYPTION_KEYS[1]} without a primary one"
        name = component.get("auth", {}).get("secretStore")
        if name not in stores:
            yield (
                f"{describe(component)}: encrypted with a key from "
                f"{name or 'no named secret store'}, which is no secret store of this overlay"
            )
            continue
        for app in sorted(_loaded_by(component, app_ids) - _loaded_by(stores[name], app_ids)):
            yield (
                f"{describe(component)}: {app}'s sidecar does not load {name} (its scopes), "
                "so it would store plaintext"
            )


def _subject_names(binding: Resource) -> set[str]:
    return {s["name"] for s in binding.get("subjects", []) if s.get("kind") == "ServiceAccount"}


def secrets_granted(resources: list[Resource], service_account: str) -> set[str]:
    """The Secrets a ServiceAccount may get through the overlay's Roles; `*` for any."""
    roles = {r["metadata"]["name"]: r for r in _of_kind(resources, "Role")}
    granted: set[str] = set()
    for binding in _of_kind(resources, "RoleBinding"):
        role = roles.get(binding["roleRef"]["name"])
        if role is None or service_account not in _subject_names(binding):
            continue
        for rule in role.get("rules", []):
            if (
                "" in rule.get("apiGroups", [])
                and {"secrets", "*"} & set(rule.get("resources", []))
                and {"get", "*"} & set(rule.get("verbs", []))
            ):
                granted |= set(rule.get("resourceNames") or ["*"])
    return granted


def _has_api_credentials(deployment: Resource) -> bool:
    """Whether daprd gets a Kubernetes API token: automounted, or a projected volume that
    dapr.io/volume-mounts puts where client-go looks for it."""
    spec = _pod(deployment)["spec"]
    if spec.get("automountServiceAccountToken") is True:
        return True
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for mount in _annotations(deployment).get("dapr.io/volume-mounts", "").split(","):
        name, _, path = mount.strip().partition(":")
        sources = volumes.get(name, {}).get("projected", {}).get("sources", [])
        if path == API_CREDENTIALS_DIR and any("serviceAccountToken" in s for s in sources):
            return True
    return False


def _secret_refs(component: Resource) -> set[str]:
    return {
        str(item["secretKeyRef"]["name"])
        for item in component["spec"].get("metadata", [])
        if item.get("secretKeyRef", {}).get("name")
    }


def kubernetes_secret_refs_are_granted(resources: list[Resource]) -> Iterator[str]:
    """Each sidecar can read every Secret its components name through a Kubernetes store.

    daprd reads them with its pod's ServiceAccount as it starts: without API credentials
    (the app's automount is off, so dapr.io/volume-mounts must give them) or a Role granting
    `get` on the Secret, the component fails to initialise and the sidecar does not start.
    """
    stores = _secret_stores(resources)
    apps = _app_ids(resources)
    for component in _of_kind(resources, "Component"):
        store = stores.get(component.get("auth", {}).get("secretStore", ""))
        refs = _secret_refs(component)
        if store is None or store["spec"]["type"] != KUBERNETES_STORE_TYPE or not refs:
            continue
        for app in sorted(_loaded_by(component, set(apps)) & _loaded_by(store, set(apps))):
            deployment = apps[app]
            where = f"{describe(deployment)}: {describe(component)}"
            if not _has_api_credentials(deployment):
                yield f"{where}: daprd has no Kubernetes API token to read its Secrets with"
            account = _pod(deployment)["spec"].get("serviceAccountName", "default")
            granted = secrets_granted(resources, account)
            for ref in sorted(refs - granted if "*" not in granted else set()):
                yield f"{where}: ServiceAccount {account} may not get Secret {ref}"


def referenced_secrets(resources: list[Resource]) -> set[str]:
    """Every Kubernetes Secret the rendered overlay reads: from containers, from Dapr's
    injector, through Kubernetes secret stores, and the ones Roles grant."""
    names: set[str] = set()
    for deployment in _of_kind(resources, "Deployment"):
        names |= {
            _annotations(deployment)[a] for a in SECRET_ANNOTATIONS if a in _annotations(deployment)
        }
        for container in _pod(deployment)["spec"]["containers"]:
            for env in container.get("env", []):
                names.add(env.get("valueFrom", {}).get("secretKeyRef", {}).get("name", ""))
            for source in container.get("envFrom", []):
                names.add(source.get("secretRef", {}).get("name", ""))
    stores = _secret_stores(resources)
    for component in _of_kind(resources, "Component"):
        name = component.get("auth", {}).get("secretStore", BUILTIN_STORE)
        store_type = stores[name]["spec"]["type"] if name in stores else None
        if name == BUILTIN_STORE or store_type == KUBERNETES_STORE_TYPE:
            names |= _secret_refs(component)
    for role in _of_kind(resources, "Role"):
        for rule in role.get("rules", []):
            if "secrets" in rule.get("resources", []):
                names |= set(rule.get("resourceNames", []))
    return names - {""}


CHECKS: tuple[Callable[[list[Resource]], Iterator[str]], ...] = (
    containers_are_hardened,
    dapr_annotations_are_complete,
    apps_share_their_sidecars_tokens,
    env_refs_reach_the_sidecars,
    component_scopes_name_apps,
    autoscalers_target_deployments,
    only_public_apps_take_ingress,
    placeholders_are_replaced,
    secret_stores_exist,
    encrypted_stores_get_their_keys,
    kubernetes_secret_refs_are_granted,
)


def check(resources: list[Resource]) -> list[str]:
    return [problem for rule in CHECKS for problem in rule(resources)]
