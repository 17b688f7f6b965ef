//! Throwaway PKI for the TLS tests: a CA made in the test and a certificate it signed for the
//! test SMSC on 127.0.0.1 / localhost (and, on request, client certificates for esmed).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use esmed_smsc::{SmscConfig, SmscTls};
use rcgen::{BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair};

pub struct TestPki {
    pub ca_pem: String,
    pub chain_pem: String,
    pub key_pem: String,
    ca: (Certificate, KeyPair),
}

impl TestPki {
    /// `ca_name` tells CAs apart (a same-named CA would be taken for the issuer).
    pub fn new(ca_name: &str) -> TestPki {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, ca_name);
        let ca_cert = ca.self_signed(&ca_key).expect("self-sign the CA");
        let key = KeyPair::generate().expect("server key");
        let leaf = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("server params");
        let cert = leaf
            .signed_by(&key, &ca_cert, &ca_key)
            .expect("sign the server certificate");
        TestPki {
            ca_pem: ca_cert.pem(),
            chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            ca: (ca_cert, ca_key),
        }
    }

    /// Writes a client certificate this CA signed, and its key (mode 600), to
    /// `dir/name-cert.pem` and `dir/name-key.pem`; returns both paths.
    pub fn write_client(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().expect("client key");
        let params = CertificateParams::new(vec!["esme.example.net".into()]).expect("params");
        let cert = params
            .signed_by(&key, &self.ca.0, &self.ca.1)
            .expect("sign the client certificate");
        let (cert_path, key_path) = (
            dir.join(format!("{name}-cert.pem")),
            dir.join(format!("{name}-key.pem")),
        );
        fs::write(&cert_path, cert.pem()).expect("write the client certificate");
        fs::write(&key_path, key.serialize_pem()).expect("write the client key");
        fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600)).expect("chmod the key");
        (cert_path, key_path)
    }

    /// Writes the CA certificate to `dir/name` and returns the path.
    pub fn write_ca(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, &self.ca_pem).expect("write the CA file");
        path
    }

    /// The usual test SMSC, serving TLS with this PKI's server certificate.
    pub fn smsc_config(&self) -> SmscConfig {
        SmscConfig {
            tls: Some(SmscTls {
                cert_chain_pem: self.chain_pem.clone().into_bytes(),
                key_pem: self.key_pem.clone().into_bytes(),
                client_ca_pem: None,
            }),
            ..super::smsc_config()
        }
    }

    /// [`TestPki::smsc_config`], requiring a client certificate signed by `clients`' CA.
    pub fn smsc_config_asking(&self, clients: &TestPki) -> SmscConfig {
        let mut config = self.smsc_config();
        if let Some(tls) = config.tls.as_mut() {
            tls.client_ca_pem = Some(clients.ca_pem.clone().into_bytes());
        }
        config
    }
}
