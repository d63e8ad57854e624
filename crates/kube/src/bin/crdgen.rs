//! Prints serin's `serin.dev/v1alpha1` Canary CRD (the file in
//! `deploy/crds/`; a test keeps the two equal).

fn main() {
    print!("{}", serin_kube::resource::serin_crd_yaml());
}
