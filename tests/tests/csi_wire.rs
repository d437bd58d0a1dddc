//! The wire format, proved by a client that shares no code with the provider: its messages are written here by hand
//! from the upstream driver's field table (kubernetes-sigs/secrets-store-csi-driver provider/v1alpha1/service.proto,
//! and grpc.health.v1), not generated from controller/proto.

use arcseal_tests::keyvault::KeyVaultStandIn;
use arcseal_tests::keyvault::provider::{Pod, ProviderHarness, attributes, objects, unix_channel};
use tonic::codegen::http::uri::PathAndQuery;

#[derive(Clone, PartialEq, prost::Message)]
struct VersionRequest {
    #[prost(string, tag = "1")]
    version: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct VersionResponse {
    #[prost(string, tag = "1")]
    version: String,
    #[prost(string, tag = "2")]
    runtime_name: String,
    #[prost(string, tag = "3")]
    runtime_version: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct MountRequest {
    #[prost(string, tag = "1")]
    attributes: String,
    #[prost(string, tag = "2")]
    secrets: String,
    #[prost(string, tag = "3")]
    target_path: String,
    #[prost(string, tag = "4")]
    permission: String,
    #[prost(message, repeated, tag = "5")]
    current_object_version: Vec<ObjectVersion>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct MountResponse {
    #[prost(message, repeated, tag = "1")]
    object_version: Vec<ObjectVersion>,
    #[prost(message, optional, tag = "2")]
    error: Option<Error>,
    #[prost(message, repeated, tag = "3")]
    files: Vec<File>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct File {
    #[prost(string, tag = "1")]
    path: String,
    #[prost(int32, tag = "2")]
    mode: i32,
    #[prost(bytes = "vec", tag = "3")]
    contents: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ObjectVersion {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(string, tag = "2")]
    version: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Error {
    #[prost(string, tag = "1")]
    code: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    service: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckResponse {
    /// 1 = SERVING.
    #[prost(int32, tag = "1")]
    status: i32,
}

async fn call<Req, Resp>(p: &ProviderHarness, method: &'static str, req: Req) -> Result<Resp, tonic::Status>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(unix_channel(p.socket.clone()).await);
    grpc.ready().await.expect("ready");
    let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
    grpc.unary(tonic::Request::new(req), PathAndQuery::from_static(method), codec)
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn independent_client_speaks_the_upstream_wire_format() {
    let kv = KeyVaultStandIn::start().await;
    kv.add_app("app-1", "s3cret");
    let version = kv.set_secret("kv1", "db-password", "hunter2");
    let p = ProviderHarness::start(&kv).await;

    let v: VersionResponse =
        call(&p, "/v1alpha1.CSIDriverProvider/Version", VersionRequest { version: "v1alpha1".into() })
            .await
            .unwrap();
    assert_eq!(v.runtime_name, "arcseal");
    assert_eq!(v.version, "v1alpha1");
    assert!(v.runtime_version.split('.').count() == 3, "semver: {}", v.runtime_version);

    let h: HealthCheckResponse =
        call(&p, "/grpc.health.v1.Health/Check", HealthCheckRequest { service: String::new() })
            .await
            .unwrap();
    assert_eq!(h.status, 1);

    let o = objects(&["objectName: db-password\nobjectType: secret\nobjectAlias: DB_PASSWORD"]);
    let attrs = attributes(
        &[("keyvaultName", "kv1"), ("tenantID", "contoso.onmicrosoft.com"), ("objects", &o)],
        &Pod::new("team-a", "app"),
    );
    let r: MountResponse = call(
        &p,
        "/v1alpha1.CSIDriverProvider/Mount",
        MountRequest {
            attributes: attrs,
            secrets: r#"{"clientid":"app-1","clientsecret":"s3cret"}"#.into(),
            target_path: "/var/lib/kubelet/pods/x/volumes/kubernetes.io~csi/v/mount".into(),
            permission: "420".into(),
            current_object_version: vec![],
        },
    )
    .await
    .unwrap();
    assert_eq!(
        r.files,
        vec![File { path: "DB_PASSWORD".into(), mode: 0o644, contents: b"hunter2".to_vec() }]
    );
    assert_eq!(r.object_version, vec![ObjectVersion { id: "secret/db-password".into(), version }]);
    assert!(r.error.is_none_or(|e| e.code.is_empty()));
}
