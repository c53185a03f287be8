//! Prompt → [`Scene`]: a small bilingual (English/French) vocabulary, matched on
//! accent- and case-folded words, longest phrase first.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::rng::{hash_str, Rng};

/// Where the film takes place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Setting {
    Beach,
    Sea,
    City,
    Forest,
    Mountains,
    Desert,
    SnowField,
    Space,
    Interior,
}

/// Light of the sky.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimeOfDay {
    Dawn,
    Day,
    Sunset,
    Night,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Weather {
    Clear,
    Clouds,
    Rain,
    Snow,
    Fog,
}

/// Things and events that can appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Element {
    Sun,
    Moon,
    Stars,
    Fireworks,
    Waves,
    Boats,
    Birds,
    Cars,
    StreetLights,
    Fire,
    Candles,
    Person,
    Glass,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CameraMove {
    Static,
    Pan,
    Dolly,
    Zoom,
    Handheld,
}

/// Colour and mood words: they tint the picture and shape the music.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mood {
    Warm,
    Cold,
    Blue,
    Golden,
    Pink,
    Purple,
    Green,
    Red,
    Calm,
    Dramatic,
    Joyful,
    Melancholic,
    Romantic,
    Mysterious,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Concept {
    Setting(Setting),
    Time(TimeOfDay),
    Weather(Weather),
    Element(Element),
    Camera(CameraMove),
    Mood(Mood),
    Sky,
}

macro_rules! name_fn {
    ($t:ty { $($v:ident => $s:expr),* $(,)? }) => {
        impl $t {
            /// Lower-case English name, as recorded in the manifest.
            pub fn name(self) -> &'static str {
                match self { $(<$t>::$v => $s),* }
            }
        }
    };
}

name_fn!(Setting { Beach => "beach", Sea => "sea", City => "city street", Forest => "forest",
    Mountains => "mountains", Desert => "desert", SnowField => "snow field", Space => "night sky / space",
    Interior => "interior" });
name_fn!(TimeOfDay { Dawn => "dawn", Day => "day", Sunset => "sunset", Night => "night" });
name_fn!(Weather { Clear => "clear", Clouds => "clouds", Rain => "rain", Snow => "snow", Fog => "fog" });
name_fn!(Element { Sun => "sun", Moon => "moon", Stars => "stars", Fireworks => "fireworks",
    Waves => "waves", Boats => "boats", Birds => "birds", Cars => "cars",
    StreetLights => "street lights", Fire => "fire", Candles => "candles",
    Person => "person", Glass => "glass" });
name_fn!(CameraMove { Static => "static", Pan => "pan", Dolly => "dolly", Zoom => "zoom",
    Handheld => "handheld" });
name_fn!(Mood { Warm => "warm", Cold => "cold", Blue => "blue", Golden => "golden", Pink => "pink",
    Purple => "purple", Green => "green", Red => "red", Calm => "calm", Dramatic => "dramatic",
    Joyful => "joyful", Melancholic => "melancholic", Romantic => "romantic",
    Mysterious => "mysterious" });

impl Concept {
    fn name(self) -> &'static str {
        match self {
            Concept::Setting(s) => s.name(),
            Concept::Time(t) => t.name(),
            Concept::Weather(w) => w.name(),
            Concept::Element(e) => e.name(),
            Concept::Camera(c) => c.name(),
            Concept::Mood(m) => m.name(),
            Concept::Sky => "sky",
        }
    }
}

use CameraMove as C;
use Concept::{Camera as Cam, Element as El, Mood as Mo, Setting as Se, Time as Ti, Weather as We};
use Element as E;
use Mood as M;
use Setting as S;
use TimeOfDay as T;
use Weather as W;

/// Folded phrases (lower case, no accents, punctuation → space) and what they depict.
const VOCAB: &[(&str, &[Concept])] = &[
    // settings
    ("beach", &[Se(S::Beach)]),
    ("beaches", &[Se(S::Beach)]),
    ("plage", &[Se(S::Beach)]),
    ("plages", &[Se(S::Beach)]),
    ("shore", &[Se(S::Beach)]),
    ("seaside", &[Se(S::Beach)]),
    ("rivage", &[Se(S::Beach)]),
    ("bord de mer", &[Se(S::Beach)]),
    ("bord de la mer", &[Se(S::Beach)]),
    ("sand", &[Se(S::Beach)]),
    ("sable", &[Se(S::Beach)]),
    ("coast", &[Se(S::Beach)]),
    ("cote", &[Se(S::Beach)]),
    ("littoral", &[Se(S::Beach)]),
    ("sea", &[Se(S::Sea)]),
    ("mer", &[Se(S::Sea)]),
    ("ocean", &[Se(S::Sea)]),
    ("lake", &[Se(S::Sea)]),
    ("lac", &[Se(S::Sea)]),
    ("water", &[Se(S::Sea)]),
    ("eau", &[Se(S::Sea)]),
    ("city", &[Se(S::City)]),
    ("ville", &[Se(S::City)]),
    ("street", &[Se(S::City)]),
    ("streets", &[Se(S::City)]),
    ("rue", &[Se(S::City)]),
    ("rues", &[Se(S::City)]),
    ("town", &[Se(S::City)]),
    ("downtown", &[Se(S::City)]),
    ("centre ville", &[Se(S::City)]),
    ("urban", &[Se(S::City)]),
    ("urbain", &[Se(S::City)]),
    ("avenue", &[Se(S::City)]),
    ("boulevard", &[Se(S::City)]),
    ("buildings", &[Se(S::City)]),
    ("immeubles", &[Se(S::City)]),
    ("skyline", &[Se(S::City)]),
    ("paris", &[Se(S::City)]),
    ("new york", &[Se(S::City)]),
    ("forest", &[Se(S::Forest)]),
    ("foret", &[Se(S::Forest)]),
    ("woods", &[Se(S::Forest)]),
    ("bois", &[Se(S::Forest)]),
    ("trees", &[Se(S::Forest)]),
    ("arbres", &[Se(S::Forest)]),
    ("jungle", &[Se(S::Forest)]),
    ("sapins", &[Se(S::Forest)]),
    ("mountain", &[Se(S::Mountains)]),
    ("mountains", &[Se(S::Mountains)]),
    ("montagne", &[Se(S::Mountains)]),
    ("montagnes", &[Se(S::Mountains)]),
    ("alps", &[Se(S::Mountains)]),
    ("alpes", &[Se(S::Mountains)]),
    ("peaks", &[Se(S::Mountains)]),
    ("sommets", &[Se(S::Mountains)]),
    ("hills", &[Se(S::Mountains)]),
    ("collines", &[Se(S::Mountains)]),
    ("desert", &[Se(S::Desert)]),
    ("dunes", &[Se(S::Desert)]),
    ("dune", &[Se(S::Desert)]),
    ("sahara", &[Se(S::Desert)]),
    ("snow field", &[Se(S::SnowField)]),
    ("snowfield", &[Se(S::SnowField)]),
    ("champ de neige", &[Se(S::SnowField)]),
    ("tundra", &[Se(S::SnowField)]),
    ("toundra", &[Se(S::SnowField)]),
    ("glacier", &[Se(S::SnowField)]),
    ("banquise", &[Se(S::SnowField)]),
    ("space", &[Se(S::Space), Ti(T::Night), El(E::Stars)]),
    ("espace", &[Se(S::Space), Ti(T::Night), El(E::Stars)]),
    ("cosmos", &[Se(S::Space), Ti(T::Night), El(E::Stars)]),
    ("galaxy", &[Se(S::Space), Ti(T::Night), El(E::Stars)]),
    ("galaxie", &[Se(S::Space), Ti(T::Night), El(E::Stars)]),
    ("universe", &[Se(S::Space), Ti(T::Night), El(E::Stars)]),
    ("univers", &[Se(S::Space), Ti(T::Night), El(E::Stars)]),
    ("nebula", &[Se(S::Space), Ti(T::Night), El(E::Stars)]),
    ("nebuleuse", &[Se(S::Space), Ti(T::Night), El(E::Stars)]),
    ("interior", &[Se(S::Interior)]),
    ("interieur", &[Se(S::Interior)]),
    ("inside", &[Se(S::Interior)]),
    ("indoors", &[Se(S::Interior)]),
    ("room", &[Se(S::Interior)]),
    ("chambre", &[Se(S::Interior)]),
    ("bedroom", &[Se(S::Interior)]),
    ("salon", &[Se(S::Interior)]),
    ("living room", &[Se(S::Interior)]),
    ("kitchen", &[Se(S::Interior)]),
    ("cuisine", &[Se(S::Interior)]),
    ("house", &[Se(S::Interior)]),
    ("maison", &[Se(S::Interior)]),
    ("home", &[Se(S::Interior)]),
    ("apartment", &[Se(S::Interior)]),
    ("appartement", &[Se(S::Interior)]),
    ("piece", &[Se(S::Interior)]),
    // time of day
    ("dawn", &[Ti(T::Dawn)]),
    ("aube", &[Ti(T::Dawn)]),
    ("aurore", &[Ti(T::Dawn)]),
    ("sunrise", &[Ti(T::Dawn), El(E::Sun)]),
    ("lever du soleil", &[Ti(T::Dawn), El(E::Sun)]),
    ("lever de soleil", &[Ti(T::Dawn), El(E::Sun)]),
    ("daybreak", &[Ti(T::Dawn)]),
    ("morning", &[Ti(T::Dawn)]),
    ("matin", &[Ti(T::Dawn)]),
    ("petit matin", &[Ti(T::Dawn)]),
    ("day", &[Ti(T::Day)]),
    ("daytime", &[Ti(T::Day)]),
    ("jour", &[Ti(T::Day)]),
    ("journee", &[Ti(T::Day)]),
    ("noon", &[Ti(T::Day)]),
    ("midi", &[Ti(T::Day)]),
    ("afternoon", &[Ti(T::Day)]),
    ("apres midi", &[Ti(T::Day)]),
    ("plein jour", &[Ti(T::Day)]),
    ("sunset", &[Ti(T::Sunset), El(E::Sun)]),
    ("sundown", &[Ti(T::Sunset), El(E::Sun)]),
    ("golden hour", &[Ti(T::Sunset), Mo(M::Golden)]),
    ("heure doree", &[Ti(T::Sunset), Mo(M::Golden)]),
    ("coucher du soleil", &[Ti(T::Sunset), El(E::Sun)]),
    ("coucher de soleil", &[Ti(T::Sunset), El(E::Sun)]),
    ("soleil couchant", &[Ti(T::Sunset), El(E::Sun)]),
    ("crepuscule", &[Ti(T::Sunset)]),
    ("dusk", &[Ti(T::Sunset)]),
    ("twilight", &[Ti(T::Sunset)]),
    ("evening", &[Ti(T::Sunset)]),
    ("soir", &[Ti(T::Sunset)]),
    ("soiree", &[Ti(T::Sunset)]),
    ("night", &[Ti(T::Night)]),
    ("nuit", &[Ti(T::Night)]),
    ("midnight", &[Ti(T::Night)]),
    ("minuit", &[Ti(T::Night)]),
    ("nighttime", &[Ti(T::Night)]),
    ("nocturne", &[Ti(T::Night)]),
    ("night sky", &[Ti(T::Night), El(E::Stars)]),
    ("ciel nocturne", &[Ti(T::Night), El(E::Stars)]),
    ("ciel etoile", &[Ti(T::Night), El(E::Stars)]),
    ("starry sky", &[Ti(T::Night), El(E::Stars)]),
    // weather
    ("clear", &[We(W::Clear)]),
    ("clear sky", &[We(W::Clear)]),
    ("ciel degage", &[We(W::Clear)]),
    ("degage", &[We(W::Clear)]),
    ("cloud", &[We(W::Clouds)]),
    ("clouds", &[We(W::Clouds)]),
    ("cloudy", &[We(W::Clouds)]),
    ("overcast", &[We(W::Clouds)]),
    ("nuage", &[We(W::Clouds)]),
    ("nuages", &[We(W::Clouds)]),
    ("nuageux", &[We(W::Clouds)]),
    ("couvert", &[We(W::Clouds)]),
    ("rain", &[We(W::Rain)]),
    ("rainy", &[We(W::Rain)]),
    ("raining", &[We(W::Rain)]),
    ("drizzle", &[We(W::Rain)]),
    ("pluie", &[We(W::Rain)]),
    ("pluvieux", &[We(W::Rain)]),
    ("il pleut", &[We(W::Rain)]),
    ("bruine", &[We(W::Rain)]),
    ("storm", &[We(W::Rain), Mo(M::Dramatic)]),
    ("thunderstorm", &[We(W::Rain), Mo(M::Dramatic)]),
    ("orage", &[We(W::Rain), Mo(M::Dramatic)]),
    ("tempete", &[We(W::Rain), Mo(M::Dramatic)]),
    ("snow", &[Se(S::SnowField), We(W::Snow)]),
    ("snowy", &[Se(S::SnowField), We(W::Snow)]),
    ("snowing", &[We(W::Snow)]),
    ("snows", &[We(W::Snow)]),
    ("snowfall", &[We(W::Snow)]),
    ("neige", &[Se(S::SnowField), We(W::Snow)]),
    ("enneige", &[Se(S::SnowField), We(W::Snow)]),
    ("il neige", &[We(W::Snow)]),
    ("flocons", &[We(W::Snow)]),
    ("snowflakes", &[We(W::Snow)]),
    ("fog", &[We(W::Fog)]),
    ("foggy", &[We(W::Fog)]),
    ("mist", &[We(W::Fog)]),
    ("misty", &[We(W::Fog)]),
    ("haze", &[We(W::Fog)]),
    ("brouillard", &[We(W::Fog)]),
    ("brume", &[We(W::Fog)]),
    ("brumeux", &[We(W::Fog)]),
    // things and events
    ("sun", &[El(E::Sun)]),
    ("soleil", &[El(E::Sun)]),
    ("sunny", &[El(E::Sun), Ti(T::Day)]),
    ("ensoleille", &[El(E::Sun), Ti(T::Day)]),
    ("moon", &[El(E::Moon)]),
    ("lune", &[El(E::Moon)]),
    ("moonlight", &[El(E::Moon), Ti(T::Night)]),
    ("clair de lune", &[El(E::Moon), Ti(T::Night)]),
    ("full moon", &[El(E::Moon)]),
    ("pleine lune", &[El(E::Moon)]),
    ("star", &[El(E::Stars)]),
    ("stars", &[El(E::Stars)]),
    ("starry", &[El(E::Stars)]),
    ("etoile", &[El(E::Stars)]),
    ("etoiles", &[El(E::Stars)]),
    ("etoilee", &[El(E::Stars)]),
    ("firework", &[El(E::Fireworks)]),
    ("fireworks", &[El(E::Fireworks)]),
    ("feu d artifice", &[El(E::Fireworks)]),
    ("feux d artifice", &[El(E::Fireworks)]),
    ("feux d artifices", &[El(E::Fireworks)]),
    ("pyrotechnics", &[El(E::Fireworks)]),
    ("wave", &[El(E::Waves)]),
    ("waves", &[El(E::Waves)]),
    ("vague", &[El(E::Waves)]),
    ("vagues", &[El(E::Waves)]),
    ("surf", &[El(E::Waves)]),
    ("houle", &[El(E::Waves)]),
    ("swell", &[El(E::Waves)]),
    ("ressac", &[El(E::Waves)]),
    ("boat", &[El(E::Boats)]),
    ("boats", &[El(E::Boats)]),
    ("bateau", &[El(E::Boats)]),
    ("bateaux", &[El(E::Boats)]),
    ("sailboat", &[El(E::Boats)]),
    ("sailboats", &[El(E::Boats)]),
    ("voilier", &[El(E::Boats)]),
    ("voiliers", &[El(E::Boats)]),
    ("ship", &[El(E::Boats)]),
    ("ships", &[El(E::Boats)]),
    ("navire", &[El(E::Boats)]),
    ("yacht", &[El(E::Boats)]),
    ("bird", &[El(E::Birds)]),
    ("birds", &[El(E::Birds)]),
    ("oiseau", &[El(E::Birds)]),
    ("oiseaux", &[El(E::Birds)]),
    ("seagull", &[El(E::Birds)]),
    ("seagulls", &[El(E::Birds)]),
    ("gull", &[El(E::Birds)]),
    ("gulls", &[El(E::Birds)]),
    ("mouette", &[El(E::Birds)]),
    ("mouettes", &[El(E::Birds)]),
    ("goeland", &[El(E::Birds)]),
    ("goelands", &[El(E::Birds)]),
    ("car", &[El(E::Cars)]),
    ("cars", &[El(E::Cars)]),
    ("voiture", &[El(E::Cars)]),
    ("voitures", &[El(E::Cars)]),
    ("traffic", &[El(E::Cars)]),
    ("circulation", &[El(E::Cars)]),
    ("taxi", &[El(E::Cars)]),
    ("taxis", &[El(E::Cars)]),
    ("street light", &[El(E::StreetLights)]),
    ("street lights", &[El(E::StreetLights)]),
    ("streetlight", &[El(E::StreetLights)]),
    ("streetlights", &[El(E::StreetLights)]),
    ("street lamp", &[El(E::StreetLights)]),
    ("street lamps", &[El(E::StreetLights)]),
    ("lampadaire", &[El(E::StreetLights)]),
    ("lampadaires", &[El(E::StreetLights)]),
    ("reverbere", &[El(E::StreetLights)]),
    ("reverberes", &[El(E::StreetLights)]),
    ("fire", &[El(E::Fire)]),
    ("feu", &[El(E::Fire)]),
    ("bonfire", &[El(E::Fire)]),
    ("campfire", &[El(E::Fire)]),
    ("feu de camp", &[El(E::Fire)]),
    ("flames", &[El(E::Fire)]),
    ("flammes", &[El(E::Fire)]),
    ("fireplace", &[El(E::Fire)]),
    ("cheminee", &[El(E::Fire)]),
    ("candle", &[El(E::Candles)]),
    ("candles", &[El(E::Candles)]),
    ("bougie", &[El(E::Candles)]),
    ("bougies", &[El(E::Candles)]),
    ("chandelle", &[El(E::Candles)]),
    ("chandelles", &[El(E::Candles)]),
    ("me", &[El(E::Person)]),
    ("moi", &[El(E::Person)]),
    ("myself", &[El(E::Person)]),
    ("man", &[El(E::Person)]),
    ("woman", &[El(E::Person)]),
    ("homme", &[El(E::Person)]),
    ("femme", &[El(E::Person)]),
    ("person", &[El(E::Person)]),
    ("personne", &[El(E::Person)]),
    ("someone", &[El(E::Person)]),
    ("somebody", &[El(E::Person)]),
    ("quelqu un", &[El(E::Person)]),
    ("girl", &[El(E::Person)]),
    ("boy", &[El(E::Person)]),
    ("fille", &[El(E::Person)]),
    ("garcon", &[El(E::Person)]),
    ("silhouette", &[El(E::Person)]),
    ("friend", &[El(E::Person)]),
    ("ami", &[El(E::Person)]),
    ("amie", &[El(E::Person)]),
    ("glass", &[El(E::Glass), El(E::Person)]),
    ("verre", &[El(E::Glass), El(E::Person)]),
    ("wine", &[El(E::Glass), El(E::Person)]),
    ("vin", &[El(E::Glass), El(E::Person)]),
    ("sparkling wine", &[El(E::Glass), El(E::Person)]),
    ("vin petillant", &[El(E::Glass), El(E::Person)]),
    ("champagne", &[El(E::Glass), El(E::Person)]),
    ("prosecco", &[El(E::Glass), El(E::Person)]),
    ("toast", &[El(E::Glass), El(E::Person)]),
    ("cheers", &[El(E::Glass), El(E::Person)]),
    ("trinquer", &[El(E::Glass), El(E::Person)]),
    ("trinque", &[El(E::Glass), El(E::Person)]),
    ("flute", &[El(E::Glass), El(E::Person)]),
    ("flute de champagne", &[El(E::Glass), El(E::Person)]),
    ("sky", &[Concept::Sky]),
    ("ciel", &[Concept::Sky]),
    ("skies", &[Concept::Sky]),
    // camera
    ("static", &[Cam(C::Static)]),
    ("still", &[Cam(C::Static)]),
    ("fixed", &[Cam(C::Static)]),
    ("fixe", &[Cam(C::Static)]),
    ("plan fixe", &[Cam(C::Static)]),
    ("tripod", &[Cam(C::Static)]),
    ("trepied", &[Cam(C::Static)]),
    ("pan", &[Cam(C::Pan)]),
    ("panning", &[Cam(C::Pan)]),
    ("panoramique", &[Cam(C::Pan)]),
    ("panorama", &[Cam(C::Pan)]),
    ("dolly", &[Cam(C::Dolly)]),
    ("travelling", &[Cam(C::Dolly)]),
    ("traveling", &[Cam(C::Dolly)]),
    ("tracking shot", &[Cam(C::Dolly)]),
    ("push in", &[Cam(C::Dolly)]),
    ("zoom", &[Cam(C::Zoom)]),
    ("zooming", &[Cam(C::Zoom)]),
    ("zoom in", &[Cam(C::Zoom)]),
    ("handheld", &[Cam(C::Handheld)]),
    ("hand held", &[Cam(C::Handheld)]),
    ("camera a l epaule", &[Cam(C::Handheld)]),
    ("a l epaule", &[Cam(C::Handheld)]),
    ("epaule", &[Cam(C::Handheld)]),
    ("shaky", &[Cam(C::Handheld)]),
    ("shaky cam", &[Cam(C::Handheld)]),
    // mood and colour
    ("warm", &[Mo(M::Warm)]),
    ("chaud", &[Mo(M::Warm)]),
    ("chaude", &[Mo(M::Warm)]),
    ("chaleureux", &[Mo(M::Warm)]),
    ("chaleureuse", &[Mo(M::Warm)]),
    ("cold", &[Mo(M::Cold)]),
    ("froid", &[Mo(M::Cold)]),
    ("froide", &[Mo(M::Cold)]),
    ("icy", &[Mo(M::Cold)]),
    ("glacial", &[Mo(M::Cold)]),
    ("glaciale", &[Mo(M::Cold)]),
    ("blue", &[Mo(M::Blue)]),
    ("bleu", &[Mo(M::Blue)]),
    ("bleue", &[Mo(M::Blue)]),
    ("bleus", &[Mo(M::Blue)]),
    ("bleues", &[Mo(M::Blue)]),
    ("golden", &[Mo(M::Golden)]),
    ("gold", &[Mo(M::Golden)]),
    ("dore", &[Mo(M::Golden)]),
    ("doree", &[Mo(M::Golden)]),
    ("dores", &[Mo(M::Golden)]),
    ("dorees", &[Mo(M::Golden)]),
    ("pink", &[Mo(M::Pink)]),
    ("rose", &[Mo(M::Pink)]),
    ("roses", &[Mo(M::Pink)]),
    ("magenta", &[Mo(M::Pink)]),
    ("purple", &[Mo(M::Purple)]),
    ("violet", &[Mo(M::Purple)]),
    ("violette", &[Mo(M::Purple)]),
    ("mauve", &[Mo(M::Purple)]),
    ("green", &[Mo(M::Green)]),
    ("vert", &[Mo(M::Green)]),
    ("verte", &[Mo(M::Green)]),
    ("red", &[Mo(M::Red)]),
    ("rouge", &[Mo(M::Red)]),
    ("orange", &[Mo(M::Red)]),
    ("calm", &[Mo(M::Calm)]),
    ("calme", &[Mo(M::Calm)]),
    ("peaceful", &[Mo(M::Calm)]),
    ("paisible", &[Mo(M::Calm)]),
    ("serene", &[Mo(M::Calm)]),
    ("serein", &[Mo(M::Calm)]),
    ("sereine", &[Mo(M::Calm)]),
    ("quiet", &[Mo(M::Calm)]),
    ("tranquille", &[Mo(M::Calm)]),
    ("relaxing", &[Mo(M::Calm)]),
    ("doux", &[Mo(M::Calm)]),
    ("douce", &[Mo(M::Calm)]),
    ("dramatic", &[Mo(M::Dramatic)]),
    ("dramatique", &[Mo(M::Dramatic)]),
    ("epic", &[Mo(M::Dramatic)]),
    ("epique", &[Mo(M::Dramatic)]),
    ("intense", &[Mo(M::Dramatic)]),
    ("stormy", &[Mo(M::Dramatic)]),
    ("joyful", &[Mo(M::Joyful)]),
    ("happy", &[Mo(M::Joyful)]),
    ("joyeux", &[Mo(M::Joyful)]),
    ("joyeuse", &[Mo(M::Joyful)]),
    ("festive", &[Mo(M::Joyful)]),
    ("festif", &[Mo(M::Joyful)]),
    ("celebration", &[Mo(M::Joyful)]),
    ("fete", &[Mo(M::Joyful)]),
    ("party", &[Mo(M::Joyful)]),
    ("celebrate", &[Mo(M::Joyful)]),
    ("celebrer", &[Mo(M::Joyful)]),
    ("heureux", &[Mo(M::Joyful)]),
    ("sad", &[Mo(M::Melancholic)]),
    ("triste", &[Mo(M::Melancholic)]),
    ("melancholic", &[Mo(M::Melancholic)]),
    ("melancolique", &[Mo(M::Melancholic)]),
    ("nostalgic", &[Mo(M::Melancholic)]),
    ("nostalgique", &[Mo(M::Melancholic)]),
    ("lonely", &[Mo(M::Melancholic)]),
    ("seul", &[Mo(M::Melancholic)]),
    ("romantic", &[Mo(M::Romantic)]),
    ("romantique", &[Mo(M::Romantic)]),
    ("love", &[Mo(M::Romantic)]),
    ("amour", &[Mo(M::Romantic)]),
    ("mysterious", &[Mo(M::Mysterious)]),
    ("mysterieux", &[Mo(M::Mysterious)]),
    ("mysterieuse", &[Mo(M::Mysterious)]),
    ("eerie", &[Mo(M::Mysterious)]),
    ("sombre", &[Mo(M::Mysterious)]),
    ("dark", &[Mo(M::Mysterious)]),
];

/// Words that carry no picture (English and French function words and fillers).
const STOP_WORDS: &[&str] = &[
    "a",
    "an",
    "the",
    "and",
    "or",
    "but",
    "of",
    "on",
    "in",
    "at",
    "to",
    "for",
    "from",
    "with",
    "without",
    "by",
    "into",
    "onto",
    "over",
    "under",
    "above",
    "below",
    "near",
    "while",
    "when",
    "as",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "being",
    "am",
    "i",
    "im",
    "you",
    "he",
    "she",
    "it",
    "its",
    "we",
    "they",
    "my",
    "your",
    "his",
    "her",
    "our",
    "their",
    "this",
    "that",
    "these",
    "those",
    "there",
    "here",
    "some",
    "any",
    "all",
    "very",
    "so",
    "too",
    "just",
    "then",
    "than",
    "up",
    "down",
    "out",
    "off",
    "around",
    "through",
    "during",
    "s",
    "t",
    "d",
    "l",
    "m",
    "n",
    "c",
    "j",
    "qu",
    "un",
    "une",
    "des",
    "du",
    "de",
    "la",
    "le",
    "les",
    "et",
    "ou",
    "mais",
    "sur",
    "sous",
    "dans",
    "au",
    "aux",
    "avec",
    "sans",
    "pour",
    "par",
    "en",
    "pendant",
    "tandis",
    "que",
    "qui",
    "quand",
    "lorsque",
    "alors",
    "est",
    "sont",
    "etait",
    "etre",
    "je",
    "tu",
    "il",
    "elle",
    "nous",
    "vous",
    "ils",
    "elles",
    "on",
    "mon",
    "ma",
    "mes",
    "ton",
    "ta",
    "tes",
    "son",
    "sa",
    "ses",
    "notre",
    "nos",
    "votre",
    "vos",
    "leur",
    "leurs",
    "ce",
    "cet",
    "cette",
    "ces",
    "ici",
    "tres",
    "trop",
    "plus",
    "moins",
    "tout",
    "tous",
    "toute",
    "toutes",
    "vers",
    "chez",
    "entre",
    "devant",
    "derriere",
    "pres",
    "loin",
    "y",
    "a",
    "ai",
    "as",
    "avons",
    "avez",
    "ont",
    "me",
    "te",
    "se",
    "lui",
    "eux",
    "comme",
    "ne",
    "pas",
    "not",
    "no",
    "have",
    "has",
    "had",
    "do",
    "does",
    "did",
    "can",
    "could",
    "will",
    "would",
    "should",
    "may",
    "might",
    "must",
    "shot",
    "scene",
    "video",
    "film",
    "clip",
    "plan",
    "scene",
    "image",
    "images",
    "picture",
    "beautiful",
    "belle",
    "beau",
    "bel",
    "nice",
    "joli",
    "jolie",
    "lovely",
    "magnifique",
    "little",
    "small",
    "petit",
    "petite",
    "big",
    "large",
    "grand",
    "grande",
    "many",
    "beaucoup",
    "de",
    "d",
    "l",
    "s",
    "show",
    "showing",
    "montre",
    "with",
    "watch",
    "watching",
    "regarde",
    "look",
    "looking",
    "see",
    "voir",
    "one",
    "two",
    "three",
    "deux",
    "trois",
    "other",
    "autre",
];

/// Lower-case, strip accents, everything else that is not a letter or digit → space.
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars().flat_map(char::to_lowercase) {
        let s: &str = match ch {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => "a",
            'ç' => "c",
            'è' | 'é' | 'ê' | 'ë' => "e",
            'ì' | 'í' | 'î' | 'ï' => "i",
            'ñ' => "n",
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' => "o",
            'ù' | 'ú' | 'û' | 'ü' => "u",
            'ý' | 'ÿ' => "y",
            'œ' => "oe",
            'æ' => "ae",
            'ß' => "ss",
            c if c.is_alphanumeric() => {
                out.push(c);
                continue;
            }
            _ => " ",
        };
        out.push_str(s);
    }
    out
}

/// Splits original text into words, each with its folded form (for reporting the
/// prompt's own words).
fn words(prompt: &str) -> Vec<(String, String, usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    let mut push = |s: usize, e: usize| {
        let w = &prompt[s..e];
        let folded = fold(w).trim().to_string();
        if !folded.is_empty() {
            out.push((w.to_string(), folded, s, e));
        }
    };
    for (i, ch) in prompt.char_indices() {
        match (ch.is_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                push(s, i);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        push(s, prompt.len());
    }
    out
}

/// A prompt term and what it was depicted as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// The words as written in the prompt (e.g. "coucher du soleil").
    pub text: String,
    /// What they map to (e.g. "sunset").
    pub meaning: String,
}

/// What the prompt asked for, resolved (defaults filled in from the seed).
#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    pub prompt: String,
    pub seed: u64,
    pub setting: Setting,
    pub time: TimeOfDay,
    pub weather: Weather,
    pub elements: BTreeSet<Element>,
    pub camera: CameraMove,
    pub moods: Vec<Mood>,
    /// Which of setting/time/weather/camera came from the seed instead of the prompt.
    pub defaulted: Vec<&'static str>,
    used: Vec<Term>,
    unused: Vec<String>,
}

impl Scene {
    /// Resolves a prompt; deterministic in `(prompt, seed)`.
    pub fn from_prompt(prompt: &str, seed: u64) -> Scene {
        let words = words(prompt);
        let folded: Vec<&str> = words.iter().map(|w| w.1.as_str()).collect();
        let mut used = Vec::new();
        let mut unused = Vec::new();
        let mut concepts: Vec<Concept> = Vec::new();
        let mut i = 0;
        while i < folded.len() {
            // Longest phrase starting here (phrases are at most 4 words).
            let mut best: Option<(usize, &[Concept])> = None;
            for n in (1..=4.min(folded.len() - i)).rev() {
                let phrase = folded[i..i + n].join(" ");
                if let Some((_, c)) = VOCAB.iter().find(|(p, _)| *p == phrase) {
                    best = Some((n, c));
                    break;
                }
            }
            match best {
                Some((n, cs)) => {
                    // The prompt's own text, apostrophes included ("feux d'artifice").
                    let text = prompt[words[i].2..words[i + n - 1].3].to_string();
                    let mut meaning: Vec<&str> = Vec::new();
                    for c in cs {
                        concepts.push(*c);
                        // Implied people are not what the word means.
                        let implied_person = matches!(c, El(E::Person)) && cs.len() > 1;
                        if !implied_person && !meaning.contains(&c.name()) {
                            meaning.push(c.name());
                        }
                    }
                    used.push(Term {
                        text,
                        meaning: meaning.join(", "),
                    });
                    i += n;
                }
                None => {
                    let f = folded[i];
                    let is_number = f.chars().all(|c| c.is_ascii_digit());
                    if !STOP_WORDS.contains(&f) && !is_number && f.chars().count() > 1 {
                        let w = words[i].0.clone();
                        if !unused.contains(&w) {
                            unused.push(w);
                        }
                    }
                    i += 1;
                }
            }
        }
        Self::resolve(prompt, seed, &concepts, used, unused)
    }

    fn resolve(
        prompt: &str,
        seed: u64,
        concepts: &[Concept],
        used: Vec<Term>,
        unused: Vec<String>,
    ) -> Scene {
        let mut rng = Rng::new(seed ^ hash_str(&fold(prompt)).rotate_left(17));
        let mut defaulted = Vec::new();
        let mut elements: BTreeSet<Element> = BTreeSet::new();
        let mut moods: Vec<Mood> = Vec::new();
        let mut settings: Vec<Setting> = Vec::new();
        let mut time = None;
        let mut weather = None;
        let mut camera = None;
        for c in concepts {
            match *c {
                Se(s) => settings.push(s),
                Ti(t) => {
                    time.get_or_insert(t);
                }
                We(w) => {
                    // Precipitation beats clouds beats clear.
                    let rank = |w: Weather| match w {
                        W::Clear => 0,
                        W::Clouds => 1,
                        W::Fog => 2,
                        W::Rain | W::Snow => 3,
                    };
                    if weather.is_none_or(|cur| rank(w) > rank(cur)) {
                        weather = Some(w);
                    }
                }
                El(e) => {
                    elements.insert(e);
                }
                Cam(c) => {
                    camera.get_or_insert(c);
                }
                Mo(m) => {
                    if !moods.contains(&m) {
                        moods.push(m);
                    }
                }
                Concept::Sky => {}
            }
        }
        // Weak settings (sea, snow) give way to any other one named.
        let strong = settings
            .iter()
            .copied()
            .find(|s| !matches!(s, S::Sea | S::SnowField));
        let setting = match (strong, settings.first()) {
            (Some(s), _) => s,
            (None, Some(s)) => *s,
            (None, None) => {
                defaulted.push("setting");
                if elements.contains(&E::Waves) || elements.contains(&E::Boats) {
                    S::Beach
                } else if elements.contains(&E::Cars) || elements.contains(&E::StreetLights) {
                    S::City
                } else if elements.contains(&E::Candles) {
                    S::Interior
                } else {
                    [
                        S::Beach,
                        S::Mountains,
                        S::Forest,
                        S::Desert,
                        S::City,
                        S::Sea,
                    ][rng.below(6)]
                }
            }
        };
        let time = match time {
            Some(t) => t,
            None => {
                defaulted.push("time of day");
                let night_things = [E::Stars, E::Moon, E::Fireworks, E::StreetLights, E::Candles];
                if setting == S::Space || night_things.iter().any(|e| elements.contains(e)) {
                    T::Night
                } else {
                    [T::Day, T::Sunset, T::Sunset, T::Dawn][rng.below(4)]
                }
            }
        };
        let weather = match weather {
            Some(w) => w,
            None => {
                defaulted.push("weather");
                if setting == S::Space || setting == S::Interior {
                    W::Clear
                } else {
                    [W::Clear, W::Clear, W::Clouds][rng.below(3)]
                }
            }
        };
        let camera = match camera {
            Some(c) => c,
            None => {
                defaulted.push("camera");
                [C::Pan, C::Dolly, C::Static, C::Pan][rng.below(4)]
            }
        };
        // What the setting and light imply.
        let outdoor_sky = setting != S::Interior;
        if matches!(setting, S::Beach | S::Sea) {
            elements.insert(E::Waves);
        }
        if setting == S::City {
            elements.insert(E::Cars);
            if matches!(time, T::Night | T::Sunset) {
                elements.insert(E::StreetLights);
            }
        }
        let clear_ish = matches!(weather, W::Clear | W::Clouds);
        if clear_ish && setting != S::Space && matches!(time, T::Dawn | T::Day | T::Sunset) {
            elements.insert(E::Sun);
        }
        if time == T::Night && clear_ish && outdoor_sky {
            elements.insert(E::Stars);
            if setting != S::Space {
                elements.insert(E::Moon);
            }
        }
        if weather != W::Clear || setting == S::Space {
            // no sun through rain or fog; in space the "sun" is a star field
            if !clear_ish || setting == S::Space {
                elements.remove(&E::Sun);
            }
        }
        if elements.contains(&E::Glass) {
            elements.insert(E::Person);
        }
        Scene {
            prompt: prompt.to_string(),
            seed,
            setting,
            time,
            weather,
            elements,
            camera,
            moods,
            defaulted,
            used,
            unused,
        }
    }

    pub fn has(&self, e: Element) -> bool {
        self.elements.contains(&e)
    }

    pub fn has_mood(&self, m: Mood) -> bool {
        self.moods.contains(&m)
    }

    /// The prompt's own words it depicts, each with what it became: `"plage (beach)"`.
    pub fn used_terms(&self) -> Vec<String> {
        self.used
            .iter()
            .map(|t| format!("{} ({})", t.text, t.meaning))
            .collect()
    }

    /// The used terms as structured pairs.
    pub fn terms(&self) -> &[Term] {
        &self.used
    }

    /// Content words the generator could not depict (stop words ignored).
    pub fn unused_terms(&self) -> Vec<String> {
        self.unused.clone()
    }

    /// Setting, time of day, weather, elements, camera and mood, for the manifest.
    pub fn describe(&self) -> Value {
        json!({
            "prompt": self.prompt,
            "seed": self.seed,
            "setting": self.setting.name(),
            "time_of_day": self.time.name(),
            "weather": self.weather.name(),
            "elements": self.elements.iter().map(|e| e.name()).collect::<Vec<_>>(),
            "camera": self.camera.name(),
            "mood": self.moods.iter().map(|m| m.name()).collect::<Vec<_>>(),
            "defaulted": self.defaulted,
            "used_terms": self.used_terms(),
            "unused_terms": self.unused_terms(),
        })
    }
}
