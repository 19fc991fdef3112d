from kubernetes.client import ApiClient

from llama_platform.k8s import common


def test_security_contexts_are_pod_security_restricted():
    api = ApiClient()
    pod = api.sanitize_for_serialization(common.pod_security_context())
    container = api.sanitize_for_serialization(common.container_security_context())
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] > 0
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["allowPrivilegeEscalation"] is False
    assert container["readOnlyRootFilesystem"] is True
    assert container["capabilities"] == {"drop": ["ALL"]}


def test_service_accounts_live_in_known_namespaces():
    namespaces = set(common.NAMESPACES.values())
    for namespace, name in common.SERVICE_ACCOUNTS.values():
        assert namespace in namespaces and name
    assert common.labels("training")["app.kubernetes.io/part-of"] == "llama-platform"
