/* special.c: scalar special functions (see special.h). Double precision
 * throughout; the float versions round the double result. */
#define _DEFAULT_SOURCE /* lgamma_r */
#include "special.h"

#include <math.h>

#define TWO_OVER_SQRT_PI 1.1283791670955126 /* 2/sqrt(pi) */

/* ---- erf_inv ----------------------------------------------------------------
 * A closed-form first guess (Winitzki's approximation, ~2e-3 relative), then
 * Halley steps on erf (or on erfc past 0.5, where 1 - |y| is exact). */
double mx_erf_inv(double y) {
  if (isnan(y)) return y;
  double a = fabs(y);
  if (a > 1) return NAN;
  if (a == 1) return copysign(INFINITY, y);
  if (a == 0) return y; /* keeps the sign of zero */

  double x;
  if (a < 1e-3) {
    x = 0.886226925452758 * a * (1 + 0.2617993877991494 * a * a); /* series: sqrt(pi)/2 (a + pi a^3 / 12) */
  } else {
    const double k = 0.147;
    double l = log((1 - a) * (1 + a)); /* 1 - a is exact here, so the tail keeps its digits */
    double b = 2 / (M_PI * k) + l / 2;
    x = sqrt(sqrt(b * b - l / k) - b);
  }
  int tail = a > 0.5;
  double q = 1 - a; /* exact for a >= 0.5 */
  for (int it = 0; it < 4; it++) {
    /* g(x) = erf(x) - a, or q - erfc(x) in the tail; g'' = -2x g', so Halley's step is g / (g' + x g). */
    double g = tail ? q - erfc(x) : erf(x) - a;
    double gp = TWO_OVER_SQRT_PI * exp(-x * x);
    double dx = g / (gp + x * g);
    x -= dx;
    if (fabs(dx) <= 1e-7 * x) break; /* cubic convergence: the error left is ~dx^3, below an ulp */
  }
  return copysign(x, y);
}

float mx_erf_invf(float y) { return (float)mx_erf_inv(y); }

/* ---- digamma --------------------------------------------------------------
 * On [1, 2] a Taylor series about the positive root x0 keeps full relative
 * precision near the root: psi(x0 + d) = sum_k (-1)^(k+1) zeta(k+1, x0) d^k
 * (40 terms reach 2e-18 over d in [-0.47, 0.54]). Other x reach [1, 2] by the
 * recurrence psi(x + 1) = psi(x) + 1/x, in whichever direction adds terms of
 * one sign; x >= 10 uses the asymptotic series. */
#define PSI_ROOT_HI 1.4616321449683622
#define PSI_ROOT_LO 9.549995429965697e-17
static const double psi_root_taylor[] = {
    0.9676722454476212, -0.4427631689835921, 0.258499760955651, -0.16394270544240652,
    0.10782405069126237, -0.07219956125645471, 0.04880428816414311, -0.03316112647484736,
    0.022597648232218104, -0.01542476590494896, 0.010538791616612175, -0.007204534386356869,
    0.004926781395729853, -0.003369801655439328, 0.002305126326734928, -0.0015769367714301972,
    0.0010788252019162967, -0.0007380709389960052, 0.000504953265834602, -0.0003454680251063077,
    0.00023635601564027053, -0.00016170622091974803, 0.0001106337276874741, -7.569179582195066e-05,
    5.178575795222081e-05, -3.5430070947659604e-05, 2.424006611860132e-05, -1.6584242271854135e-05,
    1.134638458466385e-05, -7.762817668462094e-06, 5.3110609208898636e-06, -3.6336507898010456e-06,
    2.486022733129538e-06, -1.7008538854332607e-06, 1.1636675363548843e-06, -7.96142543124197e-07,
    5.446941930669446e-07, -3.7266161283438227e-07, 2.549626552021554e-07, -1.7443695117727745e-07,
};
#define N_TAYLOR ((int)(sizeof psi_root_taylor / sizeof psi_root_taylor[0]))

/* B_2k / (2k) for the asymptotic series psi(x) ~ log x - 1/(2x) - sum B_2k / (2k x^2k). */
static const double psi_asym[] = {
    1.0 / 12, -1.0 / 120, 1.0 / 252, -1.0 / 240, 1.0 / 132, -691.0 / 32760, 1.0 / 12, -3617.0 / 8160, 43867.0 / 14364,
};
#define N_ASYM ((int)(sizeof psi_asym / sizeof psi_asym[0]))

/* psi(x0 + d); d is passed already reduced so callers can form it without rounding. */
static double psi_near_root(double d) {
  double s = 0;
  for (int k = N_TAYLOR - 1; k >= 0; k--) s = (s + psi_root_taylor[k]) * d;
  return s;
}

double mx_digamma(double x) {
  if (isnan(x) || x == INFINITY) return x;
  if (x == 0) return -1 / x; /* -inf from the right (+0), +inf from the left (-0), as scipy */
  if (x < 0) {
    /* Reflection: psi(x) = psi(1 - x) - pi / tan(pi x); tan has period 1, so reduce exactly first. */
    if (isinf(x)) return NAN;
    double r = x - nearbyint(x);
    if (r == 0) return NAN; /* poles at the negative integers */
    /* pi cot(pi r) as pi cos / sin with cos(pi r) = sin(pi (1/2 - |r|)): exact zero at half-integers. */
    return mx_digamma(1 - x) - M_PI * sin(M_PI * (0.5 - fabs(r))) / sin(M_PI * r);
  }
  if (x < 1) return psi_near_root((x - (PSI_ROOT_HI - 1)) - PSI_ROOT_LO) - 1 / x; /* x + 1 - x0, without rounding x + 1 */
  if (x >= 10) {
    double t = 1 / (x * x), s = 0;
    for (int k = N_ASYM - 1; k >= 0; k--) s = (s + psi_asym[k]) * t;
    return log(x) - 0.5 / x - s;
  }
  double acc = 0; /* x in [1, 10): step down to [1, 2]; y - 1 is exact there */
  double y = x;
  while (y > 2) {
    y -= 1;
    acc += 1 / y;
  }
  return psi_near_root((y - PSI_ROOT_HI) - PSI_ROOT_LO) + acc;
}

float mx_digammaf(float x) { return (float)mx_digamma(x); }

/* ---- lgamma --------------------------------------------------------------- */
double mx_lgamma(double x) {
  int sign;
  return lgamma_r(x, &sign);
}

float mx_lgammaf(float x) { return (float)mx_lgamma(x); }

/* ---- helpers for the functions below ------------------------------------- */

#define LOG_SQRT_2PI 0.91893853320467274178 /* log(2 pi) / 2 */
#define EULER 0.57721566490153286061

/* log(1 + t) - t without cancellation: with s = t / (2 + t), log1p(t) = 2 atanh(s),
 * so log1p(t) - t = -t^2 / (2 + t) + 2 (s^3/3 + s^5/5 + ...), every term of one sign. */
static double log1pmx(double t) {
  if (!(fabs(t) < 0.5)) return log1p(t) - t; /* |result| > 0.09 here: no digits lost */
  double s = t / (2 + t), s2 = s * s, p = s * s2, acc = 0;
  for (int k = 3; k < 80; k += 2) {
    double term = p / k;
    acc += term;
    if (fabs(term) <= 1e-17 * fabs(acc)) break;
    p *= s2;
  }
  return -t * t / (2 + t) + 2 * acc;
}

/* Stirling's correction lgamma(x) - ((x - 1/2) log x - x + log(2 pi)/2) for x >= 10:
 * B_2k / (2k (2k-1) x^(2k-1)); the last term kept is below 4e-17. */
static double stirling_corr(double x) {
  static const double c[] = {1.0 / 12, -1.0 / 360, 1.0 / 1260, -1.0 / 1680, 1.0 / 1188, -691.0 / 360360, 1.0 / 156,
                             -3617.0 / 122400};
  double t = 1 / (x * x), s = 0;
  for (int k = 7; k >= 0; k--) s = s * t + c[k];
  return s / x;
}

/* Generated by special_tables.py: Temme's coefficients and (-1)^k zeta(k)/k. */
static const double temme_d[10][24] = {
  {
    -0.3333333333333333, 0.08333333333333333, -0.014814814814814815, 0.0011574074074074073,
    0.0003527336860670194, -0.0001787551440329218, 3.919263178522438e-05, -2.185448510679992e-06,
    -1.85406221071516e-06, 8.296711340953087e-07, -1.7665952736826078e-07, 6.707853543401498e-09,
    1.0261809784240309e-08, -4.382036018453353e-09, 9.14769958223679e-10, -2.5514193994946248e-11,
    -5.830772132550426e-11, 2.4361948020667415e-11, -5.0276692801141755e-12, 1.1004392031956135e-13,
    3.371763262400985e-13, -1.392388722418162e-13, 2.8534893807047445e-14, -5.139111834242572e-16,
  },
  {
    -0.001851851851851852, -0.003472222222222222, 0.0026455026455026454, -0.0009902263374485596,
    0.00020576131687242798, -4.018775720164609e-07, -1.8098550334489977e-05, 7.64916091608111e-06,
    -1.6120900894563446e-06, 4.647127802807434e-09, 1.378633446915721e-07, -5.752545603517705e-08,
    1.1951628599778148e-08, -1.7543241719747647e-11, -1.0091543710600413e-09, 4.162792991842583e-10,
    -8.56390702649298e-11, 6.067215101604758e-14, 7.1624989648114856e-12, -2.933186643771437e-12,
    5.996696365683689e-13, -2.1671786527323313e-16, -4.978339972369262e-14, 2.0291628823713425e-14,
  },
  {
    0.004133597883597883, -0.0026813271604938273, 0.0007716049382716049, 2.0093878600823047e-06,
    -0.0001073665322636516, 5.2923448829120125e-05, -1.2760635188618728e-05, 3.423578734096138e-08,
    1.3721957309062934e-06, -6.298992138380055e-07, 1.4280614206064242e-07, -2.0477098421990866e-10,
    -1.409252991086752e-08, 6.228974084922022e-09, -1.3670488396617114e-09, 9.428356159014678e-13,
    1.2872252400089318e-10, -5.5645956134363323e-11, 1.197593554636698e-11, -4.1689782251838634e-15,
    -1.0940640427884595e-12, 4.662239946390136e-13, -9.905105763906907e-14, 1.8931876768373515e-17,
  },
  {
    0.0006494341563786008, 0.00022947209362139917, -0.0004691894943952557, 0.00026772063206283885,
    -7.561801671883977e-05, -2.396505113867297e-07, 1.1082654115347302e-05, -5.6749528269915965e-06,
    1.4230900732435883e-06, -2.7861080291528143e-11, -1.6958404091930278e-07, 8.099464905388083e-08,
    -1.9111168485973655e-08, 2.3928620439808118e-12, 2.0620131815488797e-09, -9.460496661855133e-10,
    2.1541049775774907e-10, -1.388823336813903e-14, -2.1894761681963938e-11, 9.790998951171684e-12,
    -2.178219188018096e-12, 6.208819573407901e-17, 2.126978363279737e-13, -9.344688791517433e-14,
  },
  {
    -0.0008618882909167117, 0.0007840392217200666, -0.0002990724803031902, -1.4638452578843418e-06,
    6.641498215465122e-05, -3.968365047179435e-05, 1.1375726970678419e-05, 2.507497226237533e-10,
    -1.6954149536558305e-06, 8.907507532205309e-07, -2.292934834000805e-07, 2.956794137544049e-11,
    2.8865829742708783e-08, -1.4189739437803219e-08, 3.4463580499464896e-09, -2.3024517174528067e-13,
    -3.9409233028046403e-10, 1.86023389685045e-10, -4.356323005056618e-11, 1.278600101629623e-15,
    4.67927502665792e-12, -2.149246470613483e-12, 4.908815614809652e-13, -6.33859148489156e-18,
  },
  {
    -0.00033679855336635813, -6.972813758365857e-05, 0.0002772753244959392, -0.00019932570516188847,
    6.797780477937208e-05, 1.419062920643967e-07, -1.3594048189768693e-05, 8.018470256334202e-06,
    -2.291481176508095e-06, -3.252473551298454e-10, 3.4652846491085265e-07, -1.8447187191171344e-07,
    4.8240967037894184e-08, -1.7989466721743514e-14, -6.306194500013523e-09, 3.162417628774568e-09,
    -7.840924253697429e-10, 5.192679165254041e-15, 9.358944242306784e-11, -4.513426216163278e-11,
    1.0799129993116828e-11, -3.661886712685252e-17, -1.210902069055155e-12, 5.680743584990564e-13,
  },
  {
    0.0005313079364639922, -0.0005921664373536939, 0.0002708782096718045, 7.902353232660328e-07,
    -8.153969367561969e-05, 5.61168275310625e-05, -1.8329116582843375e-05, -3.0796134506033047e-09,
    3.465155368803609e-06, -2.0291327396058603e-06, 5.788792863149004e-07, 2.338630673826657e-13,
    -8.828600746330484e-08, 4.7435958880408125e-08, -1.2545415020710383e-08, 8.649648858010293e-14,
    1.6846058979264062e-09, -8.575492823577594e-10, 2.1598224929232125e-10, -7.613230520476153e-16,
    -2.6639822008536144e-11, 1.3065700536611057e-11, -3.1799163902367977e-12, 4.710976121367431e-18,
  },
  {
    0.00034436760689237765, 5.171790908260592e-05, -0.00033493161081142234, 0.0002812695154763237,
    -0.00010976582244684731, -1.2741009095484485e-07, 2.7744451511563645e-05, -1.8263488805711332e-05,
    5.7876949497350525e-06, 4.93875893393627e-10, -1.0595367014026043e-06, 6.166714376110408e-07,
    -1.7562973359060463e-07, -1.297447328701544e-12, 2.695423606288966e-08, -1.4578352908731272e-08,
    3.887645959386175e-09, -3.881002251019412e-17, -5.327994173877286e-10, 2.7437977643314844e-10,
    -6.995796092070568e-11, 2.589986387486848e-17, 8.856689099669639e-12, -4.403168815871311e-12,
  },
  {
    -0.0006526239185953094, 0.0008394987206720873, -0.000438297098541721, -6.969091458420552e-07,
    0.00016644846642067547, -0.00012783517679769218, 4.629953263691304e-05, 4.557909867922708e-09,
    -1.0595271125805195e-05, 6.783342904865167e-06, -2.1075476666258803e-06, -1.7213731432817144e-11,
    3.773587741611098e-07, -2.1867506700122867e-07, 6.220228804018927e-08, 6.597703826733e-16,
    -9.590386497425686e-09, 5.213214492280807e-09, -1.3991589583935709e-09, 5.382058999060575e-16,
    1.9484714275467745e-10, -1.0127287556389682e-10, 2.6077347197254926e-11, -5.090418699993299e-18,
  },
  {
    -0.0005967612901927463, -7.204895416020011e-05, 0.0006782308837667328, -0.0006401475260262758,
    0.00027750107634328704, 1.819700838046515e-07, -8.479507117068503e-05, 6.105192082501531e-05,
    -2.1073920183404862e-05, -8.858589014125599e-10, 4.5284535953805374e-06, -2.8427815022504407e-06,
    8.708234177864641e-07, 3.6886101871706966e-12, -1.534469519070206e-07, 8.862466778790695e-08,
    -2.5184812301826817e-08, -1.0225912098215092e-14, 3.896947075815478e-09, -2.1267304792235634e-09,
    5.737013552805138e-10, -1.8877498501697116e-19, -8.093153869465787e-11, 4.23827232834492e-11,
  },
};
static const double lgamma1p_c[] = { /* k = 2, 3, ... */
    0.8224670334241132, -0.40068563438653143, 0.27058080842778454, -0.20738555102867398,
    0.1695571769974082, -0.1440498967688461, 0.12550966952474304, -0.11133426586956469,
    0.1000994575127818, -0.09095401714582904, 0.083353840546109, -0.0769325164113522,
    0.07143294629536133, -0.06666870588242046, 0.06250095514121304, -0.058823978658684585,
    0.055555767627403614, -0.05263167937961666, 0.05000004769810169, -0.047619070330142226,
    0.04545455629320467, -0.04347826605304026, 0.04166666915034121, -0.04000000119214014,
    0.03846153903467518, -0.037037037312989324, 0.035714285847333355, -0.034482758684919304,
    0.03333333336437758, -0.03225806453115042, 0.03125000000727597, -0.030303030306558044,
    0.029411764707594344, -0.02857142857226011, 0.027777777778181998, -0.027027027027223673,
    0.02631578947377995, -0.025641025641072283, 0.025000000000022737, -0.024390243902450117,
    0.023809523809529224, -0.023255813953491015, 0.02272727272727402, -0.022222222222222855,
    0.021739130434782917, -0.021276595744681003, 0.02083333333333341, -0.02040816326530616,
    0.020000000000000018, -0.019607843137254912, 0.019230769230769235, -0.01886792452830189,
    0.01851851851851852, -0.01818181818181818, 0.017857142857142856, -0.017543859649122806,
};
#define N_LGAMMA1P ((int)(sizeof lgamma1p_c / sizeof lgamma1p_c[0]))

/* lgamma(1 + a), accurate for small |a| where rounding 1 + a would lose a's digits. */
static double lgamma1p(double a) {
  if (!(fabs(a) < 0.5)) return mx_lgamma(1 + a);
  double s = 0;
  for (int k = N_LGAMMA1P - 1; k >= 0; k--) s = (s + lgamma1p_c[k]) * a; /* 0.5^57 / 57: below an ulp */
  return (s - EULER) * a;
}

/* log B(a, b) = lgamma(a) + lgamma(b) - lgamma(a + b) for a, b > 0; past 10 Stirling's
 * form, so large arguments do not cancel (lgamma(1e10) is 2e11, log B(1e10, 1) is -23). */
static double betaln(double a, double b) {
  double p = fmin(a, b), q = fmax(a, b), s = p + q;
  if (q < 10) return mx_lgamma(p) + mx_lgamma(q) - mx_lgamma(s);
  double r = log1p(-p / s); /* log(q / s) */
  if (p < 10) return mx_lgamma(p) + (stirling_corr(q) - stirling_corr(s)) + p - p * log(s) + (q - 0.5) * r;
  return LOG_SQRT_2PI - 0.5 * log(q) + (p - 0.5) * log(p / s) + q * r + stirling_corr(p) + stirling_corr(q) -
         stirling_corr(s);
}

/* ---- trigamma ------------------------------------------------------------------
 * x < 0: reflection psi'(1 - x) + psi'(x) = pi^2 / sin^2(pi x); the result is at
 * least pi^2 - psi'(1) there, so no cancellation. x > 0: psi'(x) = 1/x^2 + psi'(x + 1)
 * up to x >= 10 (positive terms), then the asymptotic series
 * psi'(x) ~ 1/x + 1/(2x^2) + sum B_2k / x^(2k+1) (last term 5e-17 relative at 10). */
double mx_trigamma(double x) {
  static const double b2k[] = {1.0 / 6, -1.0 / 30, 1.0 / 42, -1.0 / 30, 5.0 / 66, -691.0 / 2730, 7.0 / 6,
                               -3617.0 / 510, 43867.0 / 798};
  if (isnan(x)) return x;
  if (x == INFINITY) return 0;
  if (x <= 0) {
    if (isinf(x)) return NAN; /* oscillates without limit, as digamma */
    double r = x - nearbyint(x);
    if (r == 0) return INFINITY; /* poles at 0 and the negative integers, as scipy */
    double s = sin(M_PI * r);
    return M_PI * M_PI / (s * s) - mx_trigamma(1 - x);
  }
  double acc = 0;
  for (; x < 10; x += 1) acc += 1 / (x * x);
  double t = 1 / (x * x), s = 0;
  for (int k = 8; k >= 0; k--) s = s * t + b2k[k];
  return acc + (1 + (0.5 + s / x) / x) / x;
}

float mx_trigammaf(float x) { return (float)mx_trigamma(x); }

/* ---- erfc ------------------------------------------------------------------- */
double mx_erfc(double x) { return erfc(x); }
float mx_erfcf(float x) { return (float)erfc(x); }

/* ---- log_ndtr ------------------------------------------------------------------
 * x > 0: log1p(-Q(x)) keeps the digits of log Phi near 0 (Q = erfc(x/sqrt 2)/2 is
 * taken to full relative precision, so log Phi ~ -Q is too). -20 < x <= 0: log of
 * erfc, whose relative error is divided by |log Phi| ~ x^2/2. x <= -20: Phi(x) = phi(x)/|x| *
 * (1 - 1/x^2 + 3/x^4 - ...), an asymptotic series whose terms (2k-1)!!/x^2k
 * fall below 1e-17 long before they start to grow (k ~ x^2/2 = 200). */
#define SQRT1_2_LO (-4.833646656726457e-17) /* 1/sqrt(2) - M_SQRT1_2 */

/* erfc(x / sqrt(2)), with the rounding d of x / sqrt(2) corrected to first order:
 * uncorrected, it would cost a relative z^2 u (1e-13 at x = 35). */
static double erfc_sqrt1_2(double x) {
  double z = x * M_SQRT1_2, d = fma(x, M_SQRT1_2, -z) + x * SQRT1_2_LO;
  return erfc(z) - TWO_OVER_SQRT_PI * exp(-z * z) * d;
}

double mx_log_ndtr(double x) {
  if (isnan(x)) return x;
  if (isinf(x)) return x > 0 ? -0.0 : -INFINITY;
  if (x > 0) return log1p(-0.5 * erfc_sqrt1_2(x));
  if (x > -20) return log(0.5 * erfc_sqrt1_2(-x));
  double t = 1 / (x * x), term = 1, s = 0;
  for (int k = 1; k < 30; k++) {
    term *= -(2 * k - 1) * t;
    s += term;
    if (fabs(term) < 1e-17) break;
  }
  return -0.5 * x * x - log(-x) - LOG_SQRT_2PI + log1p(s);
}

float mx_log_ndtrf(float x) { return (float)mx_log_ndtr(x); }

/* ---- ndtri -------------------------------------------------------------------
 * Central [0.25, 0.75]: sqrt(2) erf_inv(2p - 1), where 2p - 1 is exact. Tails: p > 0.75
 * by symmetry on 1 - p (exact there); p < 0.25 solves log Phi(x) = log p by Halley's
 * method from Abramowitz & Stegun 26.2.23 (error < 4.5e-4). Working in logs keeps
 * subnormal p and the relative precision of x: an error of one ulp in log Phi
 * moves x by about u |x| / 2. */
double mx_ndtri(double p) {
  if (isnan(p)) return p;
  if (p < 0 || p > 1) return NAN;
  if (p == 0) return -INFINITY;
  if (p == 1) return INFINITY;
  if (p > 0.75) return -mx_ndtri(1 - p);
  if (p >= 0.25) return M_SQRT2 * mx_erf_inv(2 * p - 1);
  double lp = log(p), t = sqrt(-2 * lp);
  double x = -(t - (2.515517 + t * (0.802853 + t * 0.010328)) / (1 + t * (1.432788 + t * (0.189269 + t * 0.001308))));
  for (int it = 0; it < 10; it++) {
    /* h = log Phi(x) - log p; h' = r = phi/Phi; h'' = -r (x + r); step h / (h' - h h'' / 2h'). */
    double l = mx_log_ndtr(x), h = l - lp;
    double r = exp(-0.5 * x * x - LOG_SQRT_2PI - l);
    double dx = h / (r + 0.5 * h * (x + r));
    x -= dx;
    if (fabs(dx) <= 1e-6 * fabs(x)) break; /* cubic convergence: the error left is ~dx^3 */
  }
  return x;
}

float mx_ndtrif(float p) { return (float)mx_ndtri(p); }

/* ---- regularized incomplete gamma ---------------------------------------------
 * The smaller of P and Q is computed directly and the other as 1 minus it:
 *   a > 20, |x/a - 1| < 0.4: Temme's uniform expansion (DLMF 8.12.8-11), 10 terms in 1/a;
 *   a < 1, x < 2: P by its series and Q by the series of 1 - P (no 1 - P rounding);
 *   x < a + 1: P by the series sum x^n / ((a+1)...(a+n));
 *   otherwise: Q by Legendre's continued fraction (modified Lentz).
 * The factor x^a e^-x / Gamma(a) uses Stirling's form for a >= 10, so its exponent
 * a log1pmx((x - a)/a) keeps full precision near the transition x ~ a. */

/* x^a e^-x / Gamma(a). Far from x = a the exponent is formed from log(x/a): rounding
 * (x - a)/a near -1 would lose the digits of a tiny x. */
static double gamma_prefix(double a, double x) {
  if (a < 10) return exp(a * log(x) - x - mx_lgamma(a));
  double e = fabs(x - a) < 0.5 * a ? a * log1pmx((x - a) / a) : a * log(x / a) + (a - x);
  return sqrt(a / (2 * M_PI)) * exp(e - stirling_corr(a));
}

static void gamma_temme(double a, double x, double *P, double *Q) {
  double mu = (x - a) / a, l = log1pmx(mu); /* l = -eta^2 / 2 */
  double eta = copysign(sqrt(-2 * l), mu), s = 0, ak = 1;
  for (int k = 0; k < 10; k++) {
    double c = 0;
    for (int n = 23; n >= 0; n--) c = c * eta + temme_d[k][n];
    s += c * ak;
    ak /= a;
  }
  double r = exp(a * l) / sqrt(2 * M_PI * a) * s;
  if (mu >= 0) {
    *Q = 0.5 * erfc(eta * sqrt(a / 2)) + r;
    *P = 1 - *Q;
  } else {
    *P = 0.5 * erfc(-eta * sqrt(a / 2)) - r;
    *Q = 1 - *P;
  }
}

/* sum_{n>=0} x^n / ((a+1)...(a+n)); converges geometrically for x < a + 1 (ratio x/(a+n)). */
static double gamma_series(double a, double x) {
  double term = 1, sum = 1;
  for (int n = 1; n < 10000; n++) {
    term *= x / (a + n);
    sum += term;
    if (term <= 1e-17 * sum) break;
  }
  return sum;
}

/* Q(a, x) / prefix: 1/(x+1-a- 1(1-a)/(x+3-a- 2(2-a)/(x+5-a- ...))), for x >= a + 1. */
static double gamma_cf(double a, double x) {
  const double tiny = 1e-300;
  double b = x + 1 - a, c = 1 / tiny, d = 1 / b, h = d;
  for (int i = 1; i < 10000; i++) {
    double an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (fabs(d) < tiny) d = tiny;
    c = b + an / c;
    if (fabs(c) < tiny) c = tiny;
    d = 1 / d;
    double del = d * c;
    h *= del;
    if (fabs(del - 1) <= 1e-16) break;
  }
  return h;
}

/* Special values follow scipy: NaN for a < 0, x < 0 or (a, x) = (0, 0) and (inf, inf);
 * P(0, x > 0) = 1; P(a, 0) = 0; P(inf, x) = 0; P(a, inf) = 1. */
static void gamma_pq(double a, double x, double *P, double *Q) {
  *P = *Q = NAN;
  if (isnan(a) || isnan(x) || a < 0 || x < 0 || (a == 0 && x == 0) || (isinf(a) && isinf(x))) return;
  if (a == 0 || isinf(x)) {
    *P = 1, *Q = 0;
  } else if (x == 0 || isinf(a)) {
    *P = 0, *Q = 1;
  } else if (a > 20 && fabs(x - a) < 0.4 * a) {
    gamma_temme(a, x, P, Q);
  } else if (a < 1 && x < 2) {
    /* 1 - P = 1 - x^a/Gamma(a+1) (1 + a sum_{n>=1} (-x)^n / (n! (a+n))) from the series of gamma(a, x). */
    double u = a * log(x) - lgamma1p(a), term = 1, sum = 0;
    for (int n = 1; n < 200; n++) {
      term *= -x / n;
      double t = term / (a + n);
      sum += t;
      if (fabs(t) <= 1e-17 * fabs(sum)) break;
    }
    *Q = -expm1(u) - exp(u) * a * sum;
    *P = exp(u - x) * gamma_series(a, x);
  } else if (x < a + 1) {
    *P = gamma_prefix(a, x) / a * gamma_series(a, x);
    *Q = 1 - *P;
  } else {
    *Q = gamma_prefix(a, x) * gamma_cf(a, x);
    *P = 1 - *Q;
  }
}

double mx_igamma(double a, double x) {
  double p, q;
  gamma_pq(a, x, &p, &q);
  return p;
}

double mx_igammac(double a, double x) {
  double p, q;
  gamma_pq(a, x, &p, &q);
  return q;
}

float mx_igammaf(float a, float x) { return (float)mx_igamma(a, x); }
float mx_igammacf(float a, float x) { return (float)mx_igammac(a, x); }

/* ---- regularized incomplete beta -------------------------------------------------
 * I_x(a, b) = x^a y^b / (a B(a, b)) * K(x), y = 1 - x, with K the continued fraction
 * of Numerical Recipes' betacf (modified Lentz), which converges fast for
 * x < (a + 1) / (a + b + 2); past that, I_x(a, b) = 1 - I_y(b, a). The input x is
 * exact and so is y when x >= 1/2: each log below is taken of whichever is exact. */

/* x^a y^b / B(a, b); for a, b >= 10 in Stirling's form around the mode x0 = a/(a+b):
 * a log(x/x0) + b log(y/y0) = a log1pmx(d/x0) + b log1pmx(-d/y0) with d = x - x0. */
static double beta_prefix(double a, double b, double x, double y) {
  int x_exact = x <= y; /* the smaller of x and y is exact (see above) */
  double lx = x_exact ? log(x) : log1p(-y), ly = x_exact ? log1p(-x) : log(y);
  if (a >= 10 && b >= 10) {
    double s = a + b, x0 = a / s, y0 = b / s, d = x_exact ? x - x0 : y0 - y, t1 = d / x0, t2 = -d / y0;
    /* far from the mode, a log(x/x0) - a t1 from the logs: rounding t1 near -1 would lose a tiny x */
    double e = (fabs(t1) < 0.5 ? a * log1pmx(t1) : a * (lx - log(x0) - t1)) +
               (fabs(t2) < 0.5 ? b * log1pmx(t2) : b * (ly - log(y0) - t2));
    return sqrt(x0 * b / (2 * M_PI)) * exp(e + stirling_corr(s) - stirling_corr(a) - stirling_corr(b));
  }
  return exp(a * lx + b * ly - betaln(a, b));
}

/* The continued fraction runs in long double (64-bit significand on x86-64): near the mean
 * of a sharply peaked Beta its terms 1 + d_m D nearly cancel, and in double the result
 * would carry a relative error of about u (a + b) / sqrt(min(a, b)) (1e-12 at b = 1e5). */
static double beta_cf(double a_, double b_, double x_) {
  const long double tiny = 1e-300L, a = a_, b = b_, x = x_;
  long double qab = a + b, qap = a + 1, qam = a - 1, c = 1, d = 1 - qab * x / qap;
  if (fabsl(d) < tiny) d = tiny;
  d = 1 / d;
  long double h = d;
  for (int m = 1; m < 1000000; m++) {
    int m2 = 2 * m;
    long double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (fabsl(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (fabsl(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (fabsl(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (fabsl(c) < tiny) c = tiny;
    d = 1 / d;
    long double del = d * c;
    h *= del;
    if (fabsl(del - 1) <= 1e-19L) break;
  }
  return (double)h;
}

/* lgamma(a + b) - lgamma(a) for 0 < b < 1, to an absolute error of a few ulp of b: up to
 * A = a + n >= 10 by subtracting log1p(b / (a + k)), then Stirling's form, whose correction
 * terms differ by c A^-m expm1(-m log1p(b/A)) (no cancellation as b -> 0). */
static double lgamma_delta(double a, double b) {
  static const double c[] = {1.0 / 12, -1.0 / 360, 1.0 / 1260, -1.0 / 1680, 1.0 / 1188, -691.0 / 360360, 1.0 / 156,
                             -3617.0 / 122400};
  double acc = 0;
  for (; a < 10; a += 1) acc += log1p(b / a);
  double l = log1p(b / a), corr = 0, pw = 1 / a;
  for (int k = 0; k < 8; k++, pw /= a * a) corr += c[k] * pw * expm1(-(2 * k + 1) * l);
  return (a - 0.5) * l + b * log(a + b) - b + corr - acc;
}

/* I_x(a, b) for b < 1 past the mode, where 1 - I_y(b, a) would cancel (I ~ b as b -> 0):
 * I_y(b, a) = e^u (1 + b S) from the power series y^b / (b B(a, b)) sum (1-a)_n y^n / (n! (b+n)),
 * with u = b log y - log(b B(a, b)) = O(b), so I = -expm1(u) - e^u b S. Here a y < 2,
 * so the alternating terms of S stay below e^2 times their sum. */
static double beta_complement_series(double a, double b, double x, double y) {
  double ly = x <= y ? log1p(-x) : log(y);
  double u = b * ly - lgamma1p(b) + lgamma_delta(a, b), term = 1, s = 0;
  for (int n = 1; n < 5000; n++) {
    term *= (n - a) * y / n;
    double t = term / (b + n);
    s += t;
    if (fabs(t) <= 1e-17 * fabs(s)) break; /* also ends at once when (1 - a)_n hits 0 */
  }
  return -expm1(u) - exp(u) * b * s;
}

/* Special values follow scipy 1.10: NaN outside 0 <= x <= 1, for a or b <= 0 or infinite. */
double mx_ibeta(double a, double b, double x) {
  if (isnan(a) || isnan(b) || isnan(x) || x < 0 || x > 1 || !(a > 0) || !(b > 0) || isinf(a) || isinf(b)) return NAN;
  if (x == 0 || x == 1) return x;
  double y = 1 - x;
  if (x < (a + 1) / (a + b + 2)) return beta_prefix(a, b, x, y) / a * beta_cf(a, b, x);
  if (b < 1) return beta_complement_series(a, b, x, y);
  /* 1 - I_y(b, a) = 1 - pre K / b. For x < 1/2 the rounded y is corrected to first order: the
   * exact 1 - x is y + e, with e = (1 - y) - x exact (Sterbenz); pre is already taken at the
   * exact point, so only K moves: pre K'/b = dI/dy - I d(log pre)/dy = pre/(x y) - I (b/y - a/x). */
  double e = (1 - y) - x, pre = beta_prefix(b, a, y, x), j = pre * beta_cf(b, a, y) / b;
  return 1 - (j + e * (pre / (x * y) - j * (b / y - a / x)));
}

float mx_ibetaf(float a, float b, float x) { return (float)mx_ibeta(a, b, x); }
