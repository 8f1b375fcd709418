# Stan side of bench/nuts.exs: 1 chain, 500 warmup + 500 draws, Stan's default adaptation,
# max tree depth 10, on the models of ../shared/bench/nuts plus bench/nuts/logistic.stan.
# Usage: Rscript stan.R <out.csv> <seeds, e.g. 1:3> [model ...]   (model "compile" only compiles)
# Env: STAN_BENCH_DIR (the shared models and data.R), LOGISTIC_DATA (an R file defining
# logistic_data), STAN_CACHE (compiled models are cached there as .rds).
suppressMessages(library(rstan))
if (!file.exists(rstan_options("boost_lib"))) rstan_options(boost_lib = "/usr/include")
args <- commandArgs(trailingOnly = TRUE)
out_csv <- args[1]
seeds <- eval(parse(text = args[2]))
here <- dirname(normalizePath(sub("--file=", "", grep("--file=", commandArgs(FALSE), value = TRUE))))
shared <- Sys.getenv("STAN_BENCH_DIR", file.path(here, "../../../shared/bench/nuts"))
cache <- Sys.getenv("STAN_CACHE", tempdir())
dir.create(cache, showWarnings = FALSE, recursive = TRUE)
source(file.path(shared, "data.R"))
if (nzchar(Sys.getenv("LOGISTIC_DATA"))) source(Sys.getenv("LOGISTIC_DATA"))
# The quantities whose bulk ESS is reported (as the shared harness: transformed theta and x).
pars <- list(simple = c("mu", "sigma"),
             medium = c("mu_global", "sigma_global", "alpha", "beta", "sigma_obs"),
             stress = c("mu_pop", "sigma_pop", "group", "noise"),
             eight_schools_c = c("mu", "tau", "theta"),
             eight_schools_nc = c("mu", "tau", "theta"),
             funnel = c("y", "x"), funnel_nc = c("y", "x"),
             logistic = c("alpha", "beta"))
models <- if (length(args) > 2) args[-(1:2)] else names(pars)
compile_only <- "compile" %in% models
if (compile_only) models <- setdiff(names(pars), "compile")
stan_file <- function(m) if (m == "logistic") file.path(here, "logistic.stan") else file.path(shared, paste0(m, ".stan"))
compiled <- function(m) {
  code <- paste(readLines(stan_file(m)), collapse = "\n")
  rds <- file.path(cache, paste0(m, "-", digest_code(code), ".rds"))
  if (file.exists(rds)) return(readRDS(rds))
  sm <- stan_model(model_code = code, model_name = m)
  saveRDS(sm, rds)
  sm
}
digest_code <- function(code) sprintf("%08x", sum(utf8ToInt(code) * seq_along(utf8ToInt(code))) %% 2^31)
model_data <- function(m) if (m == "logistic") logistic_data else dat[[sub("_n?c$", "", m)]]
out <- NULL
for (m in models) {
  sm <- compiled(m)
  if (compile_only) next
  d <- model_data(m)
  for (s in seeds) {
    fit <- sampling(sm, data = d, chains = 1, iter = 1000, warmup = 500, seed = s, refresh = 0,
                    control = list(adapt_delta = 0.8, max_treedepth = 10))
    et <- get_elapsed_time(fit)
    a <- as.array(fit, pars = pars[[m]])[, 1, , drop = FALSE][, 1, ]
    ess <- apply(a, 2, ess_bulk)
    sp <- get_sampler_params(fit, inc_warmup = TRUE)[[1]]
    post <- (nrow(sp) - 499):nrow(sp)
    out <- rbind(out, data.frame(model = m, seed = s, warmup_s = et[1, "warmup"], sample_s = et[1, "sample"],
      min_ess_bulk = min(ess), div = sum(sp[post, "divergent__"]),
      n_leapfrog = sum(sp[post, "n_leapfrog__"]), n_leapfrog_warmup = sum(sp[-post, "n_leapfrog__"]),
      stepsize = sp[nrow(sp), "stepsize__"], row.names = NULL))
  }
}
if (!compile_only) write.csv(out, out_csv, row.names = FALSE)
cat("rstan", as.character(packageVersion("rstan")), "\n")
