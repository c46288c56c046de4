//! SCRAM users over the Kafka API (KIP-554): DescribeUserScramCredentials and
//! AlterUserScramCredentials. Credentials live in the catalog: the file alone, etcd in a
//! cluster; a client sends the salted password, never the password, and the broker keeps only
//! the stored and server keys derived from it.

use super::errors::{catalog_error, code_and_message};
use super::{Handler, Pending};
use crate::catalog::ScramCredential;
use crate::protocol::Response;
use crate::security::scram::{Scram, MAX_ITERATIONS, MIN_ITERATIONS};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

type Failure = (ResponseError, String);

impl Handler {
    pub(super) fn describe_user_scram_credentials(
        &self,
        req: DescribeUserScramCredentialsRequest,
    ) -> DescribeUserScramCredentialsResponse {
        let users = self.catalog.users();
        let info = |creds: &Vec<(String, u32)>| {
            creds
                .iter()
                .filter_map(|(m, iterations)| {
                    let mut c = CredentialInfo::default();
                    c.mechanism = Scram::from_name(m)?.type_id();
                    c.iterations = *iterations as i32;
                    Some(c)
                })
                .collect()
        };
        let mut resp = DescribeUserScramCredentialsResponse::default();
        let wanted: Vec<String> = req
            .users
            .unwrap_or_default()
            .into_iter()
            .map(|u| u.name.to_string())
            .collect();
        if wanted.is_empty() {
            resp.results = users
                .iter()
                .map(|(u, creds)| {
                    let mut r = DescribeUserScramCredentialsResult::default();
                    r.user = StrBytes::from_string(u.clone());
                    r.credential_infos = info(creds);
                    r
                })
                .collect();
            return resp;
        }
        let mut seen = BTreeSet::new();
        let duplicates: BTreeSet<&String> = wanted.iter().filter(|u| !seen.insert(*u)).collect();
        let mut answered = BTreeSet::new();
        for user in &wanted {
            if !answered.insert(user) {
                continue;
            }
            let mut r = DescribeUserScramCredentialsResult::default();
            r.user = StrBytes::from_string(user.clone());
            let failure = if duplicates.contains(user) {
                Some((
                    ResponseError::DuplicateResource,
                    "Cannot describe SCRAM credentials for the same user twice in a single request",
                ))
            } else {
                match users.get(user) {
                    Some(creds) => {
                        r.credential_infos = info(creds);
                        None
                    }
                    None => Some((
                        ResponseError::ResourceNotFound,
                        "Attempt to describe a user credential that does not exist",
                    )),
                }
            };
            if let Some((e, msg)) = failure {
                (r.error_code, r.error_message) = code_and_message(e, msg);
            }
            resp.results.push(r);
        }
        resp
    }

    pub(super) fn alter_user_scram_credentials(
        self: &Arc<Self>,
        req: AlterUserScramCredentialsRequest,
    ) -> Pending {
        // each user's changes, checked first; a user with one bad change gets none applied
        let mut per_user: BTreeMap<String, Result<Vec<Change>, Failure>> = BTreeMap::new();
        let mut mechanisms_seen: BTreeSet<(String, i8)> = BTreeSet::new();
        let deletions = req
            .deletions
            .into_iter()
            .map(|d| (d.name, d.mechanism, None));
        let upsertions = req.upsertions.into_iter().map(|u| {
            (
                u.name,
                u.mechanism,
                Some((u.iterations, u.salt, u.salted_password)),
            )
        });
        for (name, mechanism, upsert) in deletions.chain(upsertions) {
            let user = name.to_string();
            let checked = check(&user, mechanism, upsert, &mut mechanisms_seen);
            let entry = per_user.entry(user).or_insert_with(|| Ok(Vec::new()));
            match (entry.as_mut(), checked) {
                (Ok(changes), Ok(c)) => changes.push(c),
                (Ok(_), Err(f)) => *entry = Err(f),
                (Err(_), _) => {}
            }
        }
        // ALTER on the cluster
        if !self.cluster_allowed(crate::security::acl::op::ALTER) {
            for changes in per_user.values_mut() {
                *changes = Err((
                    ResponseError::ClusterAuthorizationFailed,
                    "not authorized to alter users".into(),
                ));
            }
        }
        let me = self.clone();
        Box::pin(async move {
            let mut resp = AlterUserScramCredentialsResponse::default();
            for (user, changes) in per_user {
                let mut r = AlterUserScramCredentialsResult::default();
                r.user = StrBytes::from_string(user.clone());
                let outcome = match changes {
                    Err(f) => Err(f),
                    Ok(changes) => me.apply_credentials(&user, changes).await,
                };
                if let Err((e, msg)) = outcome {
                    (r.error_code, r.error_message) = code_and_message(e, msg);
                }
                resp.results.push(r);
            }
            super::Reply::Send(Response::AlterUserScramCredentials(resp))
        })
    }

    async fn apply_credentials(&self, user: &str, changes: Vec<Change>) -> Result<(), Failure> {
        let changes = changes
            .into_iter()
            .map(|(m, c)| (user.to_string(), m.name().to_string(), c))
            .collect();
        let results = self
            .catalog
            .set_scram_credentials(changes)
            .await
            .map_err(|e| (catalog_error(&e), e.to_string()))?;
        match results.into_iter().find_map(Result::err) {
            None => {
                tracing::info!(user, "SCRAM credentials changed");
                Ok(())
            }
            Some(e) => Err((catalog_error(&e), e.to_string())),
        }
    }
}

/// One checked change: the mechanism, and the credential to keep (`None`: delete).
type Change = (Scram, Option<ScramCredential>);

fn check(
    user: &str,
    mechanism: i8,
    upsert: Option<(i32, bytes::Bytes, bytes::Bytes)>,
    seen: &mut BTreeSet<(String, i8)>,
) -> Result<Change, Failure> {
    let refuse = |e: ResponseError, m: &str| Err((e, m.to_string()));
    if user.is_empty() {
        return refuse(
            ResponseError::UnacceptableCredential,
            "Username must not be empty",
        );
    }
    let Some(mech) = Scram::from_type_id(mechanism) else {
        return refuse(
            ResponseError::UnsupportedSaslMechanism,
            "Unknown SCRAM mechanism",
        );
    };
    if !seen.insert((user.to_string(), mechanism)) {
        return refuse(
            ResponseError::DuplicateResource,
            "A user credential cannot be altered twice in the same request",
        );
    }
    let Some((iterations, salt, salted)) = upsert else {
        return Ok((mech, None));
    };
    if iterations < MIN_ITERATIONS as i32 {
        return refuse(ResponseError::UnacceptableCredential, "Too few iterations");
    }
    if iterations > MAX_ITERATIONS as i32 {
        return refuse(ResponseError::UnacceptableCredential, "Too many iterations");
    }
    if salt.is_empty() || salted.is_empty() {
        return refuse(
            ResponseError::UnacceptableCredential,
            "The salt and the salted password must not be empty",
        );
    }
    Ok((
        mech,
        Some(mech.credential(&salted, &salt, iterations as u32)),
    ))
}
