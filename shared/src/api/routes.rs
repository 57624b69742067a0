//! The contract's route table, shared by the functions (to answer unknown routes and wrong
//! methods) and by the local gateway (which must serve exactly the template's routes).

use lambda_http::{Request, RequestExt, request::RequestContext};

use super::ApiError;

/// Which Lambda serves a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    Categorization,
    Registration,
    Activation,
}

/// One route: method, path template (API Gateway syntax) and the function behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub function: Function,
}

/// Every route of the contract (§ table at the top of API.md).
pub const ROUTES: [Route; 4] = [
    Route {
        method: "GET",
        path: "/api/v2.1/customer/individual/categorization/hierarchy/{tenantId}",
        function: Function::Categorization,
    },
    Route {
        method: "POST",
        path: "/api/v2.1/customer/individual/registration",
        function: Function::Registration,
    },
    Route {
        method: "POST",
        path: "/api/v2.1/customer/individual/{customerId}/activation",
        function: Function::Activation,
    },
    Route {
        method: "POST",
        path: "/api/v2.1/customer/individual/{customerId}/activation/code",
        function: Function::Activation,
    },
];

impl Route {
    /// Path parameters when `path` matches this route's template (segments compared literally,
    /// `{name}` matching one non-empty segment).
    pub fn match_path(&self, path: &str) -> Option<PathParams> {
        let mut params = Vec::new();
        let mut template = self.path.split('/');
        let mut actual = path.split('/');
        loop {
            match (template.next(), actual.next()) {
                (None, None) => return Some(params),
                (Some(t), Some(a)) if t.starts_with('{') && t.ends_with('}') => {
                    if a.is_empty() {
                        return None;
                    }
                    params.push((&t[1..t.len() - 1], a.to_owned()));
                }
                (Some(t), Some(a)) if t == a => {}
                _ => return None,
            }
        }
    }
}

/// Path parameters by name, in template order.
pub type PathParams = Vec<(&'static str, String)>;

/// Resolves a request to a route and its path parameters, or the contract's 404/405.
pub fn resolve(method: &str, path: &str) -> Result<(Route, PathParams), ApiError> {
    let path = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    let mut allowed = Vec::new();
    for route in ROUTES {
        if let Some(params) = route.match_path(path) {
            if route.method.eq_ignore_ascii_case(method) {
                return Ok((route, params));
            }
            allowed.push(route.method);
        }
    }
    if allowed.is_empty() {
        Err(ApiError::RouteNotFound)
    } else {
        Err(ApiError::MethodNotAllowed { allowed })
    }
}

/// The route of a request as API Gateway chose it (`routeKey` and `pathParameters`), so a
/// stage or base-path prefix in the raw path changes nothing; `$default` and events without
/// a route key fall back to matching the raw path (→ the contract's 404/405).
pub fn from_request(req: &Request) -> Result<(Route, PathParams), ApiError> {
    if let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref()
        && let Some((method, path)) = ctx.route_key.as_deref().and_then(|k| k.split_once(' '))
        && let Some(route) = ROUTES.iter().find(|r| r.method == method && r.path == path)
    {
        let given = req.path_parameters();
        let params = route
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| (name, given.first(name).unwrap_or_default().to_owned()))
            .collect();
        return Ok((*route, params));
    }
    resolve(req.method().as_str(), req.uri().path())
}

/// A path parameter by name.
pub fn param<'a>(params: &'a PathParams, name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_resolve_with_their_parameters() {
        let (route, params) =
            resolve("POST", "/api/v2.1/customer/individual/abc/activation/code").unwrap();
        assert_eq!(route.function, Function::Activation);
        assert_eq!(params, vec![("customerId", "abc".to_owned())]);
        let (route, _) = resolve("POST", "/api/v2.1/customer/individual/registration").unwrap();
        assert_eq!(route.function, Function::Registration);
    }

    #[test]
    fn unknown_paths_are_404_and_wrong_methods_405() {
        assert_eq!(resolve("GET", "/nope"), Err(ApiError::RouteNotFound));
        assert_eq!(
            resolve("GET", "/api/v2.1/customer/individual/registration"),
            Err(ApiError::MethodNotAllowed {
                allowed: vec!["POST"]
            })
        );
        assert_eq!(
            resolve("POST", "/api/v2.1/customer/individual//activation"),
            Err(ApiError::RouteNotFound)
        );
    }
}
