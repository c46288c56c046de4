//! DeleteRecords (move a partition's log start offset forward) and DescribeLogDirs (the one data
//! directory, its partitions' sizes and, in v4, the file system's total and usable bytes).

use super::errors::{answered, log_error};
use super::Handler;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{
    DeleteRecordsRequest, DeleteRecordsResponse, DescribeLogDirsRequest, DescribeLogDirsResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

impl Handler {
    pub(super) fn delete_records(&self, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
        let mut resp = DeleteRecordsResponse::default();
        for t in req.topics {
            let mut tr = DeleteRecordsTopicResult::default();
            tr.name = t.name.clone();
            for p in t.partitions {
                let mut pr = DeleteRecordsPartitionResult::default();
                pr.partition_index = p.partition_index;
                pr.low_watermark = -1;
                match self.logs.get(&t.name.0, p.partition_index) {
                    None => pr.error_code = answered(ResponseError::UnknownTopicOrPartition).code(),
                    Some(log) => match log.delete_records(p.offset) {
                        Ok(low) => pr.low_watermark = low,
                        Err(e) => {
                            if !matches!(e, crate::log::LogError::OffsetOutOfRange { .. }) {
                                tracing::warn!(topic = %log.topic, partition = log.index, error = %e, "DeleteRecords failed");
                            }
                            pr.error_code = log_error(&e).code();
                        }
                    },
                }
                tr.partitions.push(pr);
            }
            resp.topics.push(tr);
        }
        resp
    }

    pub(super) fn describe_log_dirs(&self, req: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
        // which partitions: the requested ones that exist here, or all
        let mut wanted: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        match req.topics {
            Some(topics) => {
                for t in topics {
                    let entry = wanted.entry(t.topic.0.to_string()).or_default();
                    entry.extend(t.partitions);
                }
            }
            None => {
                for p in self.logs.all() {
                    wanted.entry(p.topic.clone()).or_default().push(p.index);
                }
            }
        }
        let mut dir = DescribeLogDirsResult::default();
        let path = std::path::absolute(&self.config.data_dir)
            .unwrap_or_else(|_| self.config.data_dir.clone());
        dir.log_dir = StrBytes::from_string(path.display().to_string());
        let (total, usable) = disk_space(&path);
        dir.total_bytes = total;
        dir.usable_bytes = usable;
        for (topic, mut parts) in wanted {
            parts.sort_unstable();
            parts.dedup();
            let mut tr = DescribeLogDirsTopic::default();
            tr.name = TopicName(StrBytes::from_string(topic.clone()));
            for index in parts {
                if let Some(p) = self.logs.get(&topic, index) {
                    let mut pr = DescribeLogDirsPartition::default();
                    pr.partition_index = index;
                    pr.partition_size = p.size_bytes() as i64;
                    pr.offset_lag = 0;
                    tr.partitions.push(pr);
                }
            }
            if !tr.partitions.is_empty() {
                dir.topics.push(tr);
            }
        }
        let mut resp = DescribeLogDirsResponse::default();
        resp.results.push(dir);
        resp
    }
}

/// Total and available bytes of the file system holding `path` (-1 when unknown).
fn disk_space(path: &std::path::Path) -> (i64, i64) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return (-1, -1);
    };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a properly sized out-parameter.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return (-1, -1);
    }
    let frsize = st.f_frsize as i64;
    (
        (st.f_blocks as i64).saturating_mul(frsize),
        (st.f_bavail as i64).saturating_mul(frsize),
    )
}
