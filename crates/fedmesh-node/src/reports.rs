//! `ReportService`: the monthly reports this node holds, for its own admins: on a provider's
//! node the reports of its offers' closed months (offer and tenancy reports), on a
//! subscriber's node its own tenancies' reports, mirrored from the providers. Anyone else
//! finds none (`NOT_FOUND`, as for a report that does not exist).

use fedmesh_core::usage::Month;
use fedmesh_core::{Identity, MemberId, Role};
use fedmesh_grpc::error::page_size;
use fedmesh_grpc::{ServiceError, caller};
use fedmesh_proto::pb;
use fedmesh_store::Store;
use tonic::{Request, Response, Status};

/// The service.
#[derive(Debug, Clone)]
pub struct ReportApi {
    store: Store,
    member: MemberId,
}

impl ReportApi {
    /// The reports held by `member`'s node.
    pub fn new(store: Store, member: MemberId) -> Self {
        Self { store, member }
    }

    /// Whether `caller` reads this node's reports: its own member's admins only.
    fn reads(&self, caller: &Identity) -> bool {
        caller.role() == Role::Admin && caller.member() == Some(&self.member)
    }
}

fn no_report(report_id: &str) -> ServiceError {
    ServiceError::NotFound(format!("report {report_id} not found"))
}

#[tonic::async_trait]
impl pb::report_service_server::ReportService for ReportApi {
    async fn list_reports(
        &self,
        request: Request<pb::ListReportsRequest>,
    ) -> Result<Response<pb::ListReportsResponse>, Status> {
        let identity = caller(&request)?.clone();
        let body = request.into_inner();
        let size = page_size(body.page_size, 100, 1000)?;
        let month = body
            .month
            .as_ref()
            .map(|m| fedmesh_grpc::figures::month_field("month", Some(m)))
            .transpose()?;
        let scope = match pb::ReportScope::try_from(body.scope) {
            Ok(scope) => scope,
            Err(_) => return Err(ServiceError::invalid("scope", "unknown scope").into()),
        };
        if !self.reads(&identity) {
            return Ok(Response::new(pb::ListReportsResponse::default()));
        }
        let keep = |r: &pb::MonthlyReport| {
            (body.offer_id.is_empty() || r.offer_id == body.offer_id)
                && (body.subscription_id.is_empty() || r.subscription_id == body.subscription_id)
                && month.is_none_or(|m| {
                    Month::from_proto("month", r.month.as_ref()).is_ok_and(|rm| rm == m)
                })
                && (scope == pb::ReportScope::Unspecified || r.scope == scope as i32)
        };
        let mut reports = self
            .store
            .list_reports(&body.page_token, size + 1, keep)
            .map_err(ServiceError::from)?;
        let next_page_token = if reports.len() > size {
            reports.truncate(size);
            reports
                .last()
                .map(|r| r.report_id.clone())
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListReportsResponse {
            reports,
            next_page_token,
        }))
    }

    async fn get_report(
        &self,
        request: Request<pb::GetReportRequest>,
    ) -> Result<Response<pb::GetReportResponse>, Status> {
        let identity = caller(&request)?.clone();
        let body = request.into_inner();
        if body.report_id.is_empty() {
            return Err(ServiceError::invalid("report_id", "required").into());
        }
        if !self.reads(&identity) {
            return Err(no_report(&body.report_id).into());
        }
        let report = self
            .store
            .get_report(&body.report_id)
            .map_err(ServiceError::from)?
            .ok_or_else(|| no_report(&body.report_id))?;
        Ok(Response::new(pb::GetReportResponse {
            report: Some(report),
        }))
    }
}
