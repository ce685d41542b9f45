package artifacts

import (
	"fmt"
	"strings"
)

// imageTags are the tags `kubeadm config images list` prints per Kubernetes minor for the
// images that do not carry the Kubernetes version (recorded for every v1.34.x and v1.35.x
// patch release; kube-apiserver, -controller-manager, -scheduler and kube-proxy are tagged
// with the version itself).
var imageTags = map[string]struct{ Pause, CoreDNS string }{
	"v1.34": {Pause: "3.10.1", CoreDNS: "v1.12.1"},
	"v1.35": {Pause: "3.10.1", CoreDNS: "v1.13.1"},
}

// PauseImage is the sandbox image under repo for a Kubernetes version.
func PauseImage(repo, version string) (string, error) {
	t, err := tags(version)
	if err != nil {
		return "", err
	}
	return repo + "/pause:" + t.Pause, nil
}

// KubeImages lists the images a Kubernetes version needs under repo, as kubeadm names them
// (with a custom repository kubeadm drops CoreDNS's "coredns/" path; registry.k8s.io keeps it).
// Control-plane images come first.
func KubeImages(repo, version string) (controlPlane, node []string, err error) {
	t, err := tags(version)
	if err != nil {
		return nil, nil, err
	}
	for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		controlPlane = append(controlPlane, repo+"/"+c+":"+version)
	}
	coredns := repo + "/coredns:" + t.CoreDNS
	if repo == "registry.k8s.io" {
		coredns = repo + "/coredns/coredns:" + t.CoreDNS
	}
	node = []string{repo + "/kube-proxy:" + version, repo + "/pause:" + t.Pause, coredns}
	return controlPlane, node, nil
}

func tags(version string) (struct{ Pause, CoreDNS string }, error) {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return struct{ Pause, CoreDNS string }{}, fmt.Errorf("artifacts: %q is not a Kubernetes version", version)
	}
	t, ok := imageTags[parts[0]+"."+parts[1]]
	if !ok {
		return t, fmt.Errorf("artifacts: no image tags recorded for Kubernetes %s (supported: v1.34, v1.35)", version)
	}
	return t, nil
}
